"""Watching the policy directory: the only module importing watchdog.

The directory is watched recursively, not single files: editors save by writing a new file and renaming it.
The callback runs on watchdog's thread; debouncing is the caller's (the daemon's event loop).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from onexd.policy.loader import ignored


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, on_change: Callable[[], None]) -> None:
        self.root, self.on_change = root, on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads do not change policy
        paths = [event.src_path, getattr(event, "dest_path", "")]
        relevant = [p for p in paths if p and not any(ignored(part) for part in Path(str(p)).parts[-2:])]
        if relevant:
            self.on_change()


class PolicyWatcher:
    def __init__(self, root: Path, on_change: Callable[[], None]) -> None:
        self.root = root
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.schedule(_Handler(root, on_change), str(root), recursive=True)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
