"""Node families, a module or a folder each: thin typed nodes over plain tensor functions.

Nodes import only the engine (``swapgraph.runtime``). ``nodes.builtin.NODES`` lists the
built-in types; the registry finds it through the ``swapgraph.nodes`` entry point. This
package imports nothing itself, so that a face-detection worker process loads only the
module it needs.
"""
