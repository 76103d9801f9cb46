"""Rendering: rule YAML + Jinja templates → the Kibana rule object and its query."""
