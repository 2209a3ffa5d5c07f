"""Pure builders: a RerankerDeployment (metadata + parsed spec) -> the manifests of its children.

No I/O here; the reconcile package applies what these functions return.
"""

from .children import ChildRef, all_child_refs, desired_children, ref_of, retired_children, spec_of

__all__ = ["ChildRef", "all_child_refs", "desired_children", "ref_of", "retired_children", "spec_of"]
