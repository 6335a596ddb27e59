"""swapgraph's engine: port types, nodes and registry, graph files, executor, CLI.

Import the submodules you need (``swapgraph.runtime.graph.validate``, ``.executor``, ...). This
package itself imports nothing heavy, so that a face-detection worker process, which
re-imports the ``swapgraph`` command, does not load torch.
"""

from __future__ import annotations

from .provenance import swapgraph_version

__version__ = swapgraph_version()
