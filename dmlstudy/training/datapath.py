"""Batches made ahead of the step that uses them: a background thread runs the uint8 gather from
the cache, the host→device copy and the augmentation of the next ``depth`` batches while the
caller computes (numpy and torch release the GIL in their copies and kernels). On CUDA the gather
lands in pinned memory (torch's caching host allocator keeps it until the async copy has run),
copy and augmentation run on a side stream, the consumer's stream waits on an event recorded
after them, and ``record_stream`` marks the batch as used there. On the CPU, where the thread
would compete with the step for the cores, batches are made in the step by default; made ahead
they are bit-identical (same ops, same generators). An error raised while making item i
surfaces when item i is taken.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import numpy as np
import torch

T = TypeVar("T")

#: Batches made ahead of the one in use on CUDA: two hide a slow batch behind a fast one.
DEPTH = 2


def default_depth(device: torch.device | str) -> int:
    """:data:`DEPTH` on CUDA; 0 on the CPU, where a producer thread only competes with the step
    for the same cores (benchmarks/bench_step_vs_bare.py: no gain on a loaded 2-core machine,
    a loss when every core is busy).

    >>> default_depth("cpu"), default_depth("cuda")
    (0, 2)
    """
    return DEPTH if torch.device(device).type == "cuda" else 0


class Prefetcher(Generic[T]):
    """Iterate ``make(0), ..., make(n - 1)``, made up to ``depth`` items ahead in one background
    thread that runs inside ``context()``; ``depth=0`` makes each item on demand, in the caller's
    thread. Use as a context manager: leaving it stops the thread (items not taken are dropped).

    >>> with Prefetcher(lambda i: i * i, 4) as squares:
    ...     list(squares)
    [0, 1, 4, 9]
    """

    def __init__(
        self,
        make: Callable[[int], T],
        n: int,
        *,
        depth: int = DEPTH,
        context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self._make, self._n, self._taken, self._context = make, n, 0, context
        self._stop = threading.Event()
        self._queue: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=max(depth, 1))
        self._thread: threading.Thread | None = None
        if depth > 0 and n > 0:
            self._thread = threading.Thread(target=self._run, name="dmlstudy-prefetch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            with self._context():
                for i in range(self._n):
                    if self._stop.is_set() or not self._put((True, self._make(i))):
                        return
        except BaseException as exc:  # handed to the consumer, raised at the item it belongs to
            self._put((False, exc))

    def _put(self, entry: tuple[bool, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._taken >= self._n:
            raise StopIteration
        if self._thread is None:
            with self._context():
                item = self._make(self._taken)
        else:
            ok, item = self._queue.get()
            if not ok:
                self.close()
                raise item
        self._taken += 1
        return item

    def __len__(self) -> int:
        return self._n

    def close(self) -> None:
        """Stop the thread and drop the items it made ahead."""
        self._stop.set()
        while self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
            self._thread.join(timeout=0.05)

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DeviceFeed:
    """Host→device transfer for a producer thread (:class:`Prefetcher`) and a consumer.

    The producer runs inside :meth:`producing`, copies with :meth:`gather` / :meth:`labels`,
    computes on the results and ends a batch with :meth:`publish`; the consumer gets tensors it
    may use on its current stream from :meth:`take`. On the CPU these are plain tensors.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and self.device.index is None:  # the producer thread's current device is 0
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None

    @contextlib.contextmanager
    def producing(self) -> Iterator[None]:
        """No autograd; on CUDA the training device and the side stream are current."""
        with torch.no_grad():
            if self.stream is None:
                yield
                return
            with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
                yield

    def gather(self, images: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        """``images[idx]`` (uint8 N×H×W×C, e.g. the memory-mapped cache) on the device."""
        if not self.cuda:
            return torch.from_numpy(np.ascontiguousarray(images[idx]))
        idx = np.asarray(idx)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(images)):
            raise IndexError(f"rows {idx.min()}..{idx.max()} outside the {len(images)} images")
        host = torch.empty((len(idx), *images.shape[1:]), dtype=torch.uint8, pin_memory=True)
        np.take(images, idx, axis=0, out=host.numpy(), mode="clip")  # bounds checked above
        return host.to(self.device, non_blocking=True)

    def labels(self, values: np.ndarray) -> torch.Tensor:
        """int64 labels on the device."""
        host = torch.from_numpy(np.asarray(values).astype(np.int64))
        return host.pin_memory().to(self.device, non_blocking=True) if self.cuda else host

    def publish(self, *tensors: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], Any]:
        """End a batch in the producer: its tensors, with an event after their last kernel."""
        event = None
        if self.stream is not None:
            event = torch.cuda.Event()
            event.record(self.stream)
        return tensors, event

    def take(self, batch: tuple[tuple[torch.Tensor, ...], Any]) -> tuple[torch.Tensor, ...]:
        """The batch's tensors, ready for the consumer's current stream."""
        tensors, event = batch
        if event is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(event)
            for t in tensors:
                t.record_stream(stream)  # freed only once the consumer's work on it has run
        return tensors
