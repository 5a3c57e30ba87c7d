"""Only the C extension lives here (setuptools' pyproject form for it is still experimental); all else is in
pyproject.toml. `pip install .` and `pip install -e .` build it, so a C compiler and Python's headers are needed.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    # The GIF encoder's two hot loops: palette mapping and LZW (see the file's header).
    Extension("renderer.encoders._gifcodec", sources=["services/renderer/encoders/_gifcodec.c"]),
    # RGB to yuv420p for the MP4 encoder: integer arithmetic (see the file's header).
    Extension("renderer.encoders._yuv420", sources=["services/renderer/encoders/_yuv420.c"],
              extra_compile_args=["-O3"]),
    # gen1's per-pixel work. No fused multiply-add and no fast-math: each operation is the IEEE one numpy does,
    # so the frames are the same bits on every machine (see the file's header).
    Extension("renderer.scenes._gen1", sources=["services/renderer/scenes/_gen1.c"],
              extra_compile_args=["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno"]),
])
