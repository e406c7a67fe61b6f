"""Request ids: fresh, well-formed and never handed out twice, across threads and forks."""

from __future__ import annotations

import os
import threading

from app._ids import REQUEST_ID_PATTERN, fullmatch, new_request_id


def test_ids_are_well_formed_and_unique_past_many_refills() -> None:
    ids = [new_request_id() for _ in range(5000)]  # ~20 reads of the OS's randomness
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and fullmatch(REQUEST_ID_PATTERN, i) for i in ids)
    assert all(int(i, 16) >= 0 for i in ids)


def test_threads_taking_ids_at_once_never_share_one() -> None:
    taken: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def take(mine: list[str]) -> None:
        start.wait()
        mine.extend(new_request_id() for _ in range(2000))

    threads = [threading.Thread(target=take, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for mine in taken for i in mine]
    assert len(every) == 16000
    assert len(set(every)) == len(every)


def test_a_forked_child_does_not_reuse_its_parents_unused_ids() -> None:
    new_request_id()  # the parent now holds unused ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids, then leave without cleanup
        os.close(read)
        os.write(write, "".join(new_request_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    child = {text[i : i + 32] for i in range(0, len(text), 32)}
    parent = {new_request_id() for _ in range(300)}
    assert len(child) == 10
    assert not child & parent
