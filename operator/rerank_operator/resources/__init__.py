"""Pure builders: a RerankerDeployment (metadata + parsed spec) -> the manifests of its children.

No I/O here; the reconcile package applies what these functions return.
"""

from .children import CHILD_KINDS, ChildKind, ChildRef, all_child_refs, desired_children, ref_of, retired_children

__all__ = ["CHILD_KINDS", "ChildKind", "ChildRef", "all_child_refs", "desired_children", "ref_of", "retired_children"]
