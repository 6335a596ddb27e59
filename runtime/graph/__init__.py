"""Graph files (version 1): the model, loading, overrides, validation, and the JSON Schema.

A graph file is data: nothing in it is executed. ``validate.validate_graph`` checks
everything before any frame is decoded, and reports every problem at once, each naming
the node, port or param, what was expected and found, and the fix. A module per job:
``model`` (Settings, BoundNode, Graph), ``load`` (reading the file), ``overrides``
(``--set node.param=value``), ``validate``, ``schema`` (the JSON Schema of graph files).
"""
