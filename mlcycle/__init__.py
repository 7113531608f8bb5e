"""mlcycle: a command-line toolkit for the loop between data, model and evaluation.

Every command reads and writes one *label table* (see ``mlcycle.table``). The library
API lives in plain modules (``mlcycle.table``, ``mlcycle.io``, ``mlcycle.formats``,
``mlcycle.evaluate`` ...); ``mlcycle.cli`` is a thin typer layer over them.
This module imports nothing heavy so that ``mlcycle --help`` stays instant.
"""

__version__ = "0.1.0"
