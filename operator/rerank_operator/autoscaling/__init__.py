"""Scale engine replicas by throughput: the work arriving over the capacity a replica was seen to have.

- ``policy``: the decision (pure: demand and learned capacity from vLLM's counters, sizing, stabilization)
- ``metrics``: parse vLLM ``/metrics`` and scrape many pods concurrently
- ``gateway_demand``: the requests a gateway holds while no engine is Ready (the demand at zero replicas)
- ``state``: the policy's memory, recommendation history and conditions in the RerankerDeployment status
- ``loop``: one pass for one object (``autoscale_once``) and the per-object loop (``autoscaler_daemon``)
- ``operator_metrics``: the autoscaler's own Prometheus metrics
"""
