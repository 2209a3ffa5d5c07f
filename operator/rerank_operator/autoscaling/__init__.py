"""Scale engine replicas by queue depth.

- ``policy``: the decision (pure, HPA algorithm on waiting + running requests per replica)
- ``metrics``: parse vLLM ``/metrics`` and scrape many pods concurrently
- ``state``: recommendation history and conditions in the RerankerDeployment status
- ``loop``: one pass for one object (``autoscale_once``) and the per-object loop (``autoscaler_daemon``)
- ``operator_metrics``: the autoscaler's own Prometheus metrics
"""
