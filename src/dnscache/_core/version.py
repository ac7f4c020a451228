"""The version: the one source, read by hatch (a plain literal) and by the code below the facade."""

__version__ = "0.2.0"
