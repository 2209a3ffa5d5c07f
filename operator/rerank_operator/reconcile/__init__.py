"""Reconciliation: the cluster I/O that makes a RerankerDeployment's children match its spec.

- ``kube``: a small async API client (server-side apply, merge patch, get/list/delete), whose
  connection pool kopf shares
- ``status``: the status and its conditions, computed from the children (pure)
- ``capacity``: whether any node can host an engine pod's GPUs (pure check + cached node list)
- ``reconciler``: one reconcile pass and status refresh (framework-free)
- ``events``: Kubernetes Events about a RerankerDeployment
- ``autoscalers``: the per-object autoscaling loops, started and stopped with the spec
- ``handlers``: the kopf handlers and the drift check
"""
