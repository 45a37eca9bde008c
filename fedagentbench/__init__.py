"""FedAgentBench: the command line that ties envs, fl_core, tools, graphs and evals together."""

__version__ = "0.1.0"
