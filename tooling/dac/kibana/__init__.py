"""Talking to Kibana: the HTTP client of the Detection Engine API."""
