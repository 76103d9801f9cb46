"""Deploying the build output to Kibana: targets, plan, apply, status, pull."""
