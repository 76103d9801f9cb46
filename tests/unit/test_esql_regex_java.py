"""The CSR rules' REPLACE and RLIKE patterns in java.util.regex and Lucene themselves, against our engine.

ES|QL cannot run here (the local node is the integ-test-zip, which has no ES|QL), so
tests/java/EsqlRegexCheck.java evaluates each pattern the way Elasticsearch does (that file
names the Elasticsearch sources it follows), with the lucene-core jar Elasticsearch ships, and
these tests assert that ``dac.query.esql.regex`` gives the same answer for every input: the
PEM texts of the efficacy corpus, hand-made edge cases and shifted variants.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dac.compile import CompiledRule
from dac.events.generate import LabeledRequest, efficacy_corpus
from dac.query.esql import parse_esql
from dac.query.esql.regex import java_regex, java_replacement, lucene_to_python
from dac.query.esql.syntax import Call, Eval, Literal, Match, Where, walk

REPO = Path(__file__).resolve().parents[2]
CHECKER = REPO / "tests" / "java" / "EsqlRegexCheck.java"
# The Elasticsearch that scripts/es-local pins, and the Lucene it ships (its lib/lucene-core-10.5.1.jar).
ES_VERSION = "9.5.4"
LUCENE_VERSION = "10.5.1"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"  # as scripts/es-local
# The rules under test and the corpus label each one must reproduce.
LABELS = {
    "d4818217-6ce5-4ae6-8902-c9397d85da6c": "asks_masters",
    "f4a14c20-f6b1-4edc-a968-7ab31fb1ad4c": "asks_kube_controller_manager",
}
MARKER = "-----BEGINCERTIFICATEREQUEST-----"  # the BEGIN line once REPLACE has removed the whitespace


def _java() -> Path:
    """The JDK scripts/es-local would use: temurin-25 when present, else the newest 21+ under /usr/lib/jvm."""
    preferred = Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java")
    if preferred.is_file():
        return preferred
    found: list[tuple[int, Path]] = []
    for release in Path("/usr/lib/jvm").glob("*/release"):
        match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.MULTILINE)
        java = release.parent / "bin" / "java"
        if match and int(match.group(1)) >= 21 and java.is_file():
            found.append((int(match.group(1)), java))
    if not found:
        pytest.fail("no Java 21 or newer under /usr/lib/jvm (Lucene 10 needs it): install a JDK 21+")
    return max(found)[1]


def _lucene_core_jar() -> Path:
    """Elasticsearch's own lucene-core: from the unpacked distribution, else Maven's local repository."""
    pinned = re.search(r"^ES_VERSION=(\S+)$", (REPO / "scripts" / "es-local").read_text(), re.MULTILINE)
    if pinned is None or pinned.group(1) != ES_VERSION:
        pytest.fail(
            f"scripts/es-local no longer pins Elasticsearch {ES_VERSION}: set ES_VERSION and LUCENE_VERSION "
            "in this test to that version and the lucene-core jar in its lib/"
        )
    lib = REPO / ".cache" / "es" / f"elasticsearch-{ES_VERSION}" / "lib"
    if lib.is_dir():
        jars = sorted(lib.glob("lucene-core-*.jar"))
        if [jar.name for jar in jars] != [f"lucene-core-{LUCENE_VERSION}.jar"]:
            pytest.fail(f"{lib} holds {[jar.name for jar in jars]}, not lucene-core-{LUCENE_VERSION}.jar")
        return jars[0]
    jar = (
        Path.home() / ".m2" / "repository" / "org" / "apache" / "lucene" / "lucene-core" / LUCENE_VERSION
        / f"lucene-core-{LUCENE_VERSION}.jar"
    )
    if not jar.is_file():
        mvn = shutil.which("mvn")
        if mvn is None:
            pytest.fail(
                f"lucene-core {LUCENE_VERSION} is needed: run `make es-local` (unpacks Elasticsearch "
                f"{ES_VERSION}) or install Maven to fetch org.apache.lucene:lucene-core:{LUCENE_VERSION}"
            )
        artifact = f"-Dartifact=org.apache.lucene:lucene-core:{LUCENE_VERSION}"
        get = [mvn, "-q", "-B", f"{DEPENDENCY_PLUGIN}:get", artifact]
        fetched = subprocess.run(get, capture_output=True, text=True, check=False)
        if fetched.returncode != 0 or not jar.is_file():
            output = fetched.stdout + fetched.stderr
            pytest.fail(f"Maven could not fetch lucene-core {LUCENE_VERSION} into {jar.parent}:\n{output}")
    return jar


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class JavaCheck:
    """Runs EsqlRegexCheck.java: one JVM per pattern, every input in one go."""

    def __init__(self) -> None:
        self.command = [str(_java()), "-cp", str(_lucene_core_jar()), str(CHECKER)]

    def _run(self, header: str, inputs: list[str]) -> list[str]:
        lines = "".join(f"{_b64(text)}\n" for text in inputs)
        done = subprocess.run(
            self.command, input=f"{header}\n{lines}", capture_output=True, text=True, check=False, timeout=300
        )
        if done.returncode != 0:
            pytest.fail(f"EsqlRegexCheck.java failed ({done.returncode}):\n{done.stderr}")
        return done.stdout.splitlines()

    def replace(self, regex: str, replacement: str, inputs: list[str]) -> list[str]:
        out = self._run(f"replace {_b64(regex)} {_b64(replacement)}", inputs)
        assert len(out) == len(inputs)
        return [base64.b64decode(line).decode("utf-8") for line in out]

    def rlike(self, pattern: str, inputs: list[str]) -> tuple[str, list[bool]]:
        """The automaton sizes line and, per input, whether RLIKE matches it."""
        states, *out = self._run(f"rlike {_b64(pattern)}", inputs)
        assert states.startswith("states ") and len(out) == len(inputs), states
        return states, [line == "1" for line in out]


def _python_replace(regex: str, replacement: str, inputs: list[str]) -> list[str]:
    """What functions.py's REPLACE does with a constant regex and replacement."""
    compiled = java_regex(regex)
    expand = java_replacement(compiled, replacement)
    return [compiled.compiled.sub(expand, text) for text in inputs]


def _python_rlike(pattern: str, inputs: list[str]) -> list[bool]:
    """What the evaluator's RLIKE does: the translated pattern must match the whole value."""
    fullmatch = lucene_to_python(pattern).fullmatch
    return [fullmatch(text) is not None for text in inputs]


def _rule_patterns(query: str) -> tuple[list[tuple[str, str]], str]:
    """The (regex, replacement) of each REPLACE in evaluation order, and the RLIKE pattern."""
    replaces: list[tuple[str, str]] = []
    rlikes: list[str] = []
    for command in parse_esql(query).commands:
        if isinstance(command, Eval):
            expressions = [f.expr for f in command.fields]
        elif isinstance(command, Where):
            expressions = [command.condition]
        else:
            continue
        for expression in expressions:
            nodes = walk(expression)  # parents first: an inner REPLACE runs before the one around it
            calls = [node for node in reversed(nodes) if isinstance(node, Call) and node.name == "REPLACE"]
            for call in calls:
                regex, replacement = call.args[1], call.args[2]
                assert isinstance(regex, Literal) and isinstance(replacement, Literal), call.text
                replaces.append((regex.value, replacement.value))
            matches = [node for node in nodes if isinstance(node, Match) and node.kind == "rlike"]
            rlikes += [pattern for match in matches for pattern in match.patterns]
    assert len(replaces) == 2 and len(rlikes) == 1, (replaces, rlikes)
    return replaces, rlikes[0]


def _pem(item: LabeledRequest) -> str:
    return base64.b64decode(item.events[-1]["requestObject"]["spec"]["request"]).decode("utf-8")


def _edge_cases(attack: str, benign: str) -> list[str]:
    """Texts the corpus lacks: empty, two PEM blocks, colons, every kind of space, non-ASCII."""
    return [
        "",
        benign + attack,
        attack + benign,
        attack + "\n" + attack,
        "Comment: first\n" + attack,
        "note: " + attack,  # the BEGIN line carries a colon, so REPLACE removes it
        attack.replace("\n", "\r\n"),
        attack.replace("\n", "\r"),  # no '\n' left: the first colon removes everything
        "a:b\rc:d\ne",
        ":",
        "::\n:\n\n:x:\n",
        "key: value\r\nnext",
        "grüße: 组\n😀:x\n😀 \u00a0\u0085\u2028\u3000\x0b\x0c\t\r\n",
        "\x0b\x0c\u0085\u2028\u2029\u00a0\u1680\u200b\ufeff",
        attack.replace("\n", "\n\u00a0", 3),  # NBSP is not Java's \s: it stays and breaks the base64 run
        attack.replace("\n", "\x0b", 3),  # a vertical tab ends no line for [^\n]*, yet is Java's \s
        attack.replace("\n", "\n\x0b\x0c \t"),  # Java's \s also removes these
        "é" + attack,
        attack.replace("-----BEGIN", "😀-----BEGIN"),
    ]


def _shifted(cleaned: str) -> list[str]:
    """Variants of a cleaned PEM: the base64 alignment RLIKE counts from the marker, text around it."""
    at = cleaned.find(MARKER)
    if at < 0:
        return []
    head, body = cleaned[: at + len(MARKER)], cleaned[at + len(MARKER) :]
    return [
        head + body[1:],
        head + "AA" + body,
        head + "AAAA" + body,
        "组😀" + cleaned,  # multi-byte UTF-8 before the marker
        f"\n{cleaned}\r\n",  # Lucene's '.' matches line breaks too
        cleaned.lower(),
    ]


@dataclass
class RuleRun:
    """Every input of one rule through Java/Lucene and through our engine."""

    labels: list[bool]  # the corpus truth, for the first len(labels) values
    java_steps: list[list[str]]  # inputs, then the value after each REPLACE
    python_steps: list[list[str]]
    rlike_inputs: list[str]
    python_rlike: list[bool]
    java_rlike: list[bool] = field(default_factory=list)
    states: str = ""  # the automaton sizes EsqlRegexCheck reports


@pytest.fixture(scope="module")
def runs(repository_rules: list[CompiledRule]) -> dict[str, RuleRun]:
    corpus = efficacy_corpus(seed=11, malicious=350, benign=350)
    pems = [_pem(item) for item in corpus]
    both = (item.asks_masters and item.asks_kube_controller_manager for item in corpus)
    attack = next(p for asks_both, p in zip(both, pems, strict=True) if asks_both)  # found by both rules
    benign = next(p for item, p in zip(corpus, pems, strict=True) if not item.malicious)
    inputs = pems + _edge_cases(attack, benign)
    queries = {rule.kibana["rule_id"]: rule.kibana["query"] for rule in repository_rules}
    check = JavaCheck()
    java_replaced: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}  # both rules share the REPLACEs
    out: dict[str, RuleRun] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:  # the RLIKE JVMs run while Python matches
        lucene: dict[str, Future[tuple[str, list[bool]]]] = {}
        for rule_id in LABELS:
            replaces, pattern = _rule_patterns(queries[rule_id])
            java_steps, python_steps = [inputs], [inputs]
            for regex, replacement in replaces:
                key = (regex, replacement, tuple(java_steps[-1]))
                if key not in java_replaced:
                    java_replaced[key] = check.replace(regex, replacement, java_steps[-1])
                java_steps.append(java_replaced[key])
                python_steps.append(_python_replace(regex, replacement, python_steps[-1]))
            extra = pems + [v for cleaned in python_steps[-1] for v in _shifted(cleaned)]
            lucene[rule_id] = pool.submit(check.rlike, pattern, java_steps[-1] + extra)
            rlike_inputs = python_steps[-1] + extra
            out[rule_id] = RuleRun(
                labels=[getattr(item, LABELS[rule_id]) for item in corpus],
                java_steps=java_steps,
                python_steps=python_steps,
                rlike_inputs=rlike_inputs,
                python_rlike=_python_rlike(pattern, rlike_inputs),
            )
        for rule_id, future in lucene.items():
            out[rule_id].states, out[rule_id].java_rlike = future.result()
    return out


@pytest.mark.parametrize("rule_id", LABELS)
def test_replace_agrees_with_java_regex_on_every_input(runs: dict[str, RuleRun], rule_id: str) -> None:
    run = runs[rule_id]
    assert len(run.java_steps) == 3
    inputs = run.java_steps[0]
    steps = zip(run.java_steps[1:], run.python_steps[1:], strict=True)
    for step, (java, python) in enumerate(steps, start=1):
        differ = [(text, j, p) for text, j, p in zip(inputs, java, python, strict=True) if j != p]
        assert not differ, f"REPLACE {step}: {len(differ)} differ; first (input, java, ours): {differ[0]}"


@pytest.mark.parametrize("rule_id", LABELS)
def test_rlike_agrees_with_lucene_and_lucene_finds_every_attack(
    runs: dict[str, RuleRun], rule_id: str, record_property: Callable[[str, object], None]
) -> None:
    run = runs[rule_id]
    record_property("automaton", run.states)
    print(f"{rule_id}: {len(run.rlike_inputs)} RLIKE inputs, {run.states}")
    results = zip(run.rlike_inputs, run.java_rlike, run.python_rlike, strict=True)
    differ = [(text, j) for text, j, p in results if j != p]
    assert not differ, f"{len(differ)} RLIKE results differ; first (value, lucene): {differ[0]}"
    corpus_hits = run.java_rlike[: len(run.labels)]
    assert corpus_hits == run.labels  # in Lucene itself: every attack found, no look-alike flagged
    assert 0 < sum(run.labels) < len(run.labels)


def test_checker_refuses_a_pattern_lucene_cannot_determinize() -> None:
    """ES answers such an RLIKE with 'Pattern was too complex to determinize'; so must the checker."""
    check = JavaCheck()
    with pytest.raises(pytest.fail.Exception, match="too complex to determinize"):
        check.rlike("(a|b)*a(a|b){30}", ["ab"])
