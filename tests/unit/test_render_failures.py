"""render_job when it does not finish (cancelled, or its ffmpeg killed), and the palette's two arrival orders: no
files, threads or encoder processes left behind, and the same bytes whichever way the palette comes."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from renderer import render
from renderer.encoders.gif import GifWriter
from renderer.render import GIF_WAITING, RenderCancelled, render_job

pytestmark = pytest.mark.unit

SMALL = {"seed": 5, "size": 192, "frames": 24}
OUR_THREADS = ("mp4-feed", "gif", "render-helper")


def _children() -> dict[int, str]:
    """This process's child processes (zombies included) and their names, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        name, rest = text[text.index("(") + 1: text.rindex(")")], text[text.rindex(")") + 2:].split()
        if int(rest[1]) == os.getpid():  # field 4, the parent's pid
            found[int(stat.parent.name)] = name
    return found


def _ffmpeg_children() -> set[int]:
    return {pid for pid, name in _children().items() if "ffmpeg" in name}


def _our_threads(before: set[int | None]) -> list[str]:
    return [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith(OUR_THREADS)]


def _assert_nothing_left(out_dir: Path, threads_before: set[int | None], ffmpeg_before: set[int]) -> None:
    assert sorted(p.name for p in out_dir.iterdir()) == []  # neither the assets nor their .tmp files
    assert _our_threads(threads_before) == []
    assert _ffmpeg_children() - ffmpeg_before == set()


def test_a_cancelled_render_leaves_no_files_threads_or_encoder(tmp_path):
    cancel = threading.Event()
    threads_before = {t.ident for t in threading.enumerate()}
    ffmpeg_before = _ffmpeg_children()

    def on_progress(percent: int, phase: str) -> None:
        if phase == "render" and percent >= 20:  # frame 20 of the default job's 100
            cancel.set()

    with pytest.raises(RenderCancelled, match="stopped at frame 20 of 100"):
        render_job("gen1", {"seed": 7}, tmp_path, on_progress, cancel)
    _assert_nothing_left(tmp_path, threads_before, ffmpeg_before)


@pytest.mark.timeout(30)
def test_a_killed_ffmpeg_stops_the_render_at_once_with_a_clear_error(tmp_path):
    threads_before = {t.ident for t in threading.enumerate()}
    ffmpeg_before = _ffmpeg_children()
    killed: list[int] = []
    progress: list[int] = []

    def on_progress(percent: int, phase: str) -> None:
        progress.append(percent)
        if phase == "render" and percent >= 20 and not killed:
            ours = _ffmpeg_children() - ffmpeg_before
            assert len(ours) == 1, ours
            killed.append(ours.pop())
            os.kill(killed[0], signal.SIGKILL)

    with pytest.raises(RuntimeError, match="ffmpeg") as raised:
        render_job("gen1", {"seed": 7}, tmp_path, on_progress)
    assert killed
    # Raised by add() a few frames after the kill, not at close() once every frame was drawn (95 %).
    assert max(progress) < 95, progress
    assert isinstance(raised.value.__cause__, OSError), raised.value.__cause__
    _assert_nothing_left(tmp_path, threads_before, ffmpeg_before)


class _Inline:
    """An executor that runs each task as it is submitted: the palette is there before the first frame is drawn."""

    def __init__(self, *_args, **_kwargs) -> None:
        pass

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


class _Late(ThreadPoolExecutor):
    """The palette's fit sleeps, and its future reports itself unfinished: the render holds GIF_WAITING frames,
    then waits in result() for the palette."""

    def submit(self, fn, *args) -> Future:
        if fn is not render._fit_palette:
            return super().submit(fn, *args)

        def slow(samples):
            threading.Event().wait(0.3)
            return fn(samples)

        future = super().submit(slow, *args)
        future.done = lambda: False  # never seen finished by the loop's check, whatever the timing
        return future


@pytest.mark.parametrize("executor, frames_before_gif", [(_Inline, 1), (_Late, GIF_WAITING)],
                         ids=["palette first", "palette late"])
def test_the_palette_arriving_before_or_after_the_first_frames_gives_the_same_bytes(
        tmp_path_factory, monkeypatch, executor, frames_before_gif):
    seen = {"mp4 frames": 0, "gif made after": None}

    class CountingMp4(render.Mp4Writer):
        def add(self, frame):
            seen["mp4 frames"] += 1
            super().add(frame)

    def gif_writer(*args, **kwargs):
        seen["gif made after"] = seen["mp4 frames"]
        return GifWriter(*args, **kwargs)

    monkeypatch.setattr(render, "Mp4Writer", CountingMp4)
    monkeypatch.setattr(render, "GifWriter", gif_writer)
    monkeypatch.setattr(render, "ThreadPoolExecutor", executor)
    out = tmp_path_factory.mktemp("order")
    got = {a.kind: a.path.read_bytes() for a in render_job("gen1", SMALL, out)}
    assert seen["gif made after"] == frames_before_gif  # the branch meant was taken
    monkeypatch.undo()
    want = {a.kind: a.path.read_bytes() for a in render_job("gen1", SMALL, tmp_path_factory.mktemp("plain"))}
    assert got["image"] == want["image"]
    assert got == want


def test_an_encoder_whose_feeder_cannot_start_leaves_no_ffmpeg(tmp_path, monkeypatch):
    from renderer.encoders import mp4

    class NoThread(threading.Thread):
        def start(self):
            raise RuntimeError("can't start new thread")

    ffmpeg_before = _ffmpeg_children()
    monkeypatch.setattr(mp4.threading, "Thread", NoThread)
    with pytest.raises(RuntimeError, match="can't start"):
        mp4.Mp4Writer(tmp_path / "a.mp4", 64, 64, 25)
    assert _ffmpeg_children() - ffmpeg_before == set()
