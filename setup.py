"""The one part of dac in C: the reader's line scanner (tooling/dac/events/linescan.c). Everything
else about the package is in pyproject.toml; installing needs a C compiler."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("dac.events._linescan", sources=["tooling/dac/events/linescan.c"])])
