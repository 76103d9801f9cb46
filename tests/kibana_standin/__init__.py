"""A Kibana stand-in for the deploy tests: an HTTP test double of the Detection Engine and Spaces APIs.

No Kibana can run on the project's machines, so ``server.KibanaStandIn`` answers the endpoints the
deployer uses the way Kibana 9.x does (each behaviour cites the Kibana source file it follows), runs
enabled rules on the real Elasticsearch node, and can inject faults. ``target.open_kibana_target``
gives tests a real Kibana when one is configured (``KIBANA_URL`` or the docker-compose stack) and the
stand-in otherwise; ``plugin`` reports which one a session ran against.
"""
