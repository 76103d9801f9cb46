"""``dac diff``: the review of a change to the rules, BASE → HEAD.

``sides`` builds each side from git with the real pipeline; ``compare`` classifies rules by
rule_id, diffs their rendered objects (``dac.objectdiff``) and raises review flags;
``behaviour`` runs both versions of every changed rule over the same events; ``output``
writes the report as text, JSON or Markdown. ``model`` is the report itself.
"""
