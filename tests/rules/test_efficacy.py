"""The CSR subject rules on the efficacy corpus: every attack found, no look-alike flagged."""

from __future__ import annotations

import pytest

from dac.efficacy import measure

RULE = "this repository's rule"


def test_subject_rules_have_full_recall_and_no_false_positives(repository_rules) -> None:
    report = measure(repository_rules, seed=7, malicious=1000, benign=1000)
    ours = {identity: s for (identity, approach), s in report.scores.items() if approach == RULE}
    assert set(ours) == {"system:masters", "system:kube-controller-manager"}
    for identity, score in ours.items():
        assert score.false_negatives == 0 and score.recall == 1.0, identity
        assert score.false_positives == 0, identity
        for key, (detected, malicious, false_positives) in score.by.items():
            assert detected == malicious and false_positives == 0, (identity, key)


def test_published_approaches_fall_short_as_the_readme_says(repository_rules) -> None:
    report = measure(repository_rules, seed=7, malicious=350, benign=350)
    masters = {
        approach: s for (identity, approach), s in report.scores.items() if identity == "system:masters"
    }
    # base64 fragments of the outer request only ever hit plain text around or inside the PEM armour
    assert masters["base64 fragments"].by["family:standard-64"][0] == 0
    # a decode that ignores Go's PEM rules loses every layout with headers, spaces or surrounding text
    for family in ("pem-headers", "spaces-tabs", "surrounding-text"):
        assert masters["strip-and-decode"].by[f"family:{family}"][0] == 0, family
    assert masters["strip-and-decode"].by["string:bmp"][0] == 0
    assert masters["strip-and-decode"].false_positives > 0


@pytest.mark.parametrize("log_format", ["gke", "aks", "eks"])
def test_subject_rules_stay_exact_in_every_managed_cluster_format(repository_rules, log_format) -> None:
    """The same corpus wrapped as GKE, AKS and EKS deliver it (dac.events.envelopes); 175 requests
    per half cover every PEM family, string type and key type."""
    report = measure(repository_rules, seed=7, malicious=175, benign=175, log_format=log_format)
    ours = {identity: s for (identity, approach), s in report.scores.items() if approach == RULE}
    assert set(ours) == {"system:masters", "system:kube-controller-manager"}
    for identity, score in ours.items():
        assert score.true_positives > 0 and score.recall == 1.0, (log_format, identity)
        assert score.false_positives == 0, (log_format, identity)
