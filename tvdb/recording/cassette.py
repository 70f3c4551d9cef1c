"""vcrpy's Cassette with matching by canonical key: one dict lookup per request, so replay is linear.

vcrpy compares every request with every recorded one through its matchers, and its `body`
matcher re-parses both bodies each time: quadratic in cassette size (issue 11 measured 74 s for
1,000 interactions). Here each recorded interaction's key (tvdb.recording.keys) is computed once,
when it is loaded or recorded, and a request is looked up by its own key. The interception, the
record modes and the file format stay vcrpy's.

Interactions with the same key play in recorded order (a 429 and then its successful retry).
A GET whose recorded answers are used up plays its last one again: a parse job's status polls
replay tolerantly, so a different number of polls reaches the same final state.
A request with no recorded interaction raises CassetteMiss saying it is not recorded (method and
scrubbed URL), the closest recorded request and what differs (never a header value) and how to
re-record.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vcr.cassette import Cassette
from vcr.record_mode import RecordMode

from tvdb.errors import CassetteMiss
from tvdb.recording.keys import RequestShape, content_type_of, difference, request_shape, similarity
from tvdb.services.remote.openai_embedder import REPLAYED_HEADER  # noqa: I001

_REPEATABLE = frozenset({"GET", "HEAD"})


def shape_of(request: Any) -> RequestShape:
    """The match shape of a vcrpy Request."""
    return request_shape(request.method, request.uri, request.body, content_type_of(request.headers))


class IndexedCassette(Cassette):  # type: ignore[misc]
    """A vcrpy Cassette whose lookups go through a dict of canonical keys (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._index: dict[Any, list[int]] = {}
        self._shapes: list[RequestShape] = []
        super().__init__(*args, **kwargs)
        # vcrpy deep-copies every request before its filters (twice per replayed request); tvdb's
        # scrub works in place on the throwaway vcrpy Request the stub built, and is idempotent
        in_place = getattr(self._persister, "match_filter", None)
        if in_place is not None:
            self._before_record_request = in_place

    # -- the index ----------------------------------------------------------------------------------
    def append(self, request: Any, response: Any) -> None:
        before = len(self.data)
        super().append(request, response)
        if len(self.data) > before:
            shape = shape_of(self.data[-1][0])
            self._shapes.append(shape)
            self._index.setdefault(shape.key, []).append(before)

    def _playable(self, request: Any) -> tuple[RequestShape, int | None]:
        """The request's shape and the index of the interaction to play for it (None: a miss)."""
        shape = shape_of(request)
        indices = self._index.get(shape.key, ())
        for i in indices:
            if self.play_counts[i] == 0 or self.allow_playback_repeats:
                return shape, i
        if indices and shape.method in _REPEATABLE:
            return shape, indices[-1]
        return shape, None

    def _responses(self, request: Any) -> Any:
        request = self._before_record_request(request)
        if request:
            for i in self._index.get(shape_of(request).key, ()):
                yield i, self.data[i][1]

    def __contains__(self, request: Any) -> bool:
        return self._playable(request)[1] is not None

    # -- playing ------------------------------------------------------------------------------------
    def can_play_response_for(self, request: Any) -> bool:
        filtered = self._before_record_request(request)
        if not filtered:
            return False
        shape, index = self._playable(filtered)
        found = index is not None
        # vcrpy calls play_response next with the same request: keep the work done here for it
        request._tvdb_match = (filtered, shape, index)
        if self.record_mode != RecordMode.ALL and (self.rewound or self.allow_playback_repeats) and found:
            return True
        if self.write_protected:
            raise self.miss(filtered)
        return False

    def play_response(self, request: Any) -> Any:
        cached = request.__dict__.pop("_tvdb_match", None)
        if cached is not None and cached[2] is not None and (
                self.play_counts[cached[2]] == 0 or cached[1].method in _REPEATABLE or self.allow_playback_repeats):
            filtered, shape, i = cached
        else:
            filtered = self._before_record_request(request)
            shape, i = self._playable(filtered)
        if i is None:
            raise self.miss(filtered)
        if self.play_counts[i] == 0 and i < self._loaded_count:
            self._played_interactions.append(self.data[i])
        self.play_counts[i] += 1
        response = self.data[i][1]
        if self.record_mode == RecordMode.NONE:
            return response
        # recording (once / new_episodes): tell the client this answer cost nothing (a copy: the
        # marker is never stored)
        return {**response, "headers": {**response.get("headers", {}), REPLAYED_HEADER: ["1"]}}

    # -- saving (vcrpy compares all pairs here too; keys make it linear) ----------------------------
    def _new_interactions(self) -> list[Any]:
        old = {shape_of(r).key for r, _ in self._old_interactions}
        return [(r, s) for (r, s), shape in zip(self.data, self._shapes, strict=True) if shape.key not in old]

    def _rerecorded_interactions(self) -> list[Any]:
        loaded = list(zip(self.data[: self._loaded_count], self._shapes[: self._loaded_count], strict=True))
        recorded = self.data[self._loaded_count:]
        if self.drop_unused_requests:
            return list(recorded)
        fresh = {s.key for s in self._shapes[self._loaded_count:]}
        return [pair for pair, shape in loaded if shape.key not in fresh] + list(recorded)

    # -- misses -------------------------------------------------------------------------------------
    def miss(self, request: Any) -> CassetteMiss:
        """The error for a request this cassette cannot answer (computed only on a miss: O(n))."""
        shape = shape_of(request)
        where = f"{self._path} ({len(self.data)} interactions)"
        hint = getattr(self._persister, "rerecord_hint", None) or "re-record the cassette (tvdb run SCENARIO --record)"
        same = self._index.get(shape.key)
        asked = f"{shape.method} {shown_url(request.uri)}"
        if same:
            lines = [f"replay: {asked} was recorded {len(same)} time(s) in {where} and this run asks "
                     f"for it again (recorded runs made fewer identical calls)"]
        else:
            lines = [f"replay: {asked} is not recorded in {where}"]
            if self._shapes:
                best = max(range(len(self._shapes)), key=lambda j: similarity(shape, self._shapes[j]))
                closest = self._shapes[best]
                lines.append(f"closest recorded request: #{best + 1} {closest.describe()}")
                lines += [f"  - {d}" for d in difference(shape, closest)[:6]]
        lines.append(f"The cassette is out of date for this scenario: {hint}; "
                     "or add only the new requests with --record-mode new_episodes.")
        return CassetteMiss("\n".join(lines))


def shown_url(uri: str) -> str:
    """A (scrubbed) request URL for a message: the host says which service or endpoint was asked,
    which the match key leaves out; a `user:password@` in it is dropped."""
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, "")) if host else uri
