"""`python -m rerank_operator ...` == `rerank-operator ...`."""

from rerank_operator.cli import main

raise SystemExit(main())
