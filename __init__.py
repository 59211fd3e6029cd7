"""mirograph: long, multi-agent research investigations on LangGraph.

The packages follow one direction of dependency:
``state`` <- ``agents`` <- ``graphs`` <- ``flows``.
"""

__version__ = "0.1.0"
