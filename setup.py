"""Only the C extension lives here (setuptools' pyproject form for it is still experimental); all else is in
pyproject.toml. `pip install .` and `pip install -e .` build it, so a C compiler and Python's headers are needed.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    # The GIF encoder's two hot loops: palette mapping and LZW (see the file's header).
    Extension("renderer.encoders._gifcodec", sources=["services/renderer/encoders/_gifcodec.c"]),
])
