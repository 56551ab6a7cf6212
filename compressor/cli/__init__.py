"""The ``compress`` command line: a thin Click layer over the library."""
