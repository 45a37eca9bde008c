"""The graph as ``langgraph dev`` / LangGraph Studio load it (see langgraph.json).

The server supplies its own checkpointer. Paths and the model come from the run's configurable
values or from FEDAGENTBENCH_ENV_DIR, FEDAGENTBENCH_RUN_DIR and FEDAGENTBENCH_MODEL (default scripted).
"""

from graphs.server import build_graph

graph = build_graph()
