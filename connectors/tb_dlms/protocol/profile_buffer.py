"""A Profile Generic's buffer read within a session: its layout, the selector, the rows decoded.

Why a module of its own: a profile read is a GET with selective access whose reply only makes
sense against the profile's capture objects and period (read once per association, with the
scalers of its registers), and whose rows need the clock column turned into epoch milliseconds
(compressed profiles leave it out after the first row). What to read when (ranges, fallback to
entries) is profile_reads.py's job; the codec of selectors and capture objects is profile.py's.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Sequence

from gurux_dlms import GXByteBuffer
from gurux_dlms.enums import ObjectType

from . import axdr, profile
from .errors import AccessError, BadReply
from .exchange import _GET
from .obis import ObisCode
from .profile import ProfileData
from .reads import Reads
from .readings import AttributeRef
from .values import apply_scaler, decode_clock, plain


class ProfileBuffer(Reads):
    """Rows of a Profile Generic, by range, by entry or all (``MeterSession.read_profile``)."""

    async def _profile_layout(self, code: ObisCode) -> tuple[list[profile.CaptureObject], int]:
        layout = self._profiles.get(code)
        if layout is None:
            columns_raw, period = await self._get_raw([
                AttributeRef(code, profile.PROFILE_CLASS, profile.CAPTURE_OBJECTS),
                AttributeRef(code, profile.PROFILE_CLASS, profile.CAPTURE_PERIOD),
            ])
            if isinstance(columns_raw, axdr.AccessResult):
                raise AccessError(f"capture objects of {code}: {columns_raw.name}", self.settings.label)
            columns = profile.parse_capture_objects(columns_raw)
            registers = [AttributeRef(c.ref.obis, c.ref.class_id, 3) for c in columns
                         if c.ref.has_scaler and c.ref not in self._scalers]
            if registers:
                for sref, value in zip(registers, await self._get_raw(registers), strict=True):
                    self._remember_scaler(sref, value)
            layout = self._profiles[code] = (columns, period if isinstance(period, int) else 0)
        return layout

    async def _read_profile(self, code: ObisCode, selector: bytes | None, start: _dt.datetime | None,
                            end: _dt.datetime | None, local_offset_min: int | None) -> ProfileData:
        await self._ensure_associated()
        client = self._associated_client()
        columns, period = await self._profile_layout(code)
        if selector is None:
            if start is None or end is None:  # read_profile() leaves the selector to us only for a range
                raise ValueError("a range read needs both start and end")
            clock = next((c for c in columns if c.is_clock), None)
            selector = profile.range_selector(start, end, clock, local_offset_min,
                                              deviation_specified=not self.settings.no_range_deviation)
        buffer_ref = AttributeRef(code, profile.PROFILE_CLASS, profile.BUFFER)
        if not client.useLogicalNameReferencing:
            name = await self._sn_name(client, buffer_ref)
            try:
                rows = (await self._read_sn(client, [(name, selector[0], selector[1:]) if selector
                                                     else (name, None, None)]))[0]
            except BadReply as exc:
                raise exc.naming([buffer_ref]) from None
            if isinstance(rows, axdr.AccessResult):
                raise AccessError(f"buffer of {code}: {rows.name}", self.settings.label)
        else:
            self._next_invoke_id(client)
            frames = client._read(str(code), ObjectType.PROFILE_GENERIC, profile.BUFFER,
                                  GXByteBuffer(selector) if selector else None)
            try:
                reply = await self._exchange(client, frames, _GET)
            except BadReply as exc:
                raise exc.naming([buffer_ref]) from None
            if reply.error:
                raise AccessError(f"buffer of {code}: {axdr.AccessResult(reply.error).name}", self.settings.label)
            rows = reply.value
        data = profile.ProfileData(code, columns, capture_period=period)
        last_ts = None
        for raw_row in rows or []:
            row = self._decode_row(columns, raw_row, last_ts, period, local_offset_min)
            last_ts = row.timestamp_ms
            data.rows.append(row)
        return data

    def _decode_row(self, columns: Sequence[profile.CaptureObject], raw_row: Sequence[Any], last_ts: int | None,
                    period: int, local_offset_min: int | None) -> profile.ProfileRow:
        values: list[Any] = []
        ts: int | None = None
        status: tuple[str, ...] = ()
        # A row that does not match the capture objects (a meter's odd row) keeps what pairs up.
        for col, value in zip(columns, raw_row, strict=False):
            if col.is_clock:
                clock = decode_clock(value, self.settings.deviation_utc_minus_local)
                if clock is None:
                    # Compressed profiles leave the clock out after the first row.
                    ts = last_ts + period * 1000 if last_ts is not None and period else None
                else:
                    ts = clock.get("epochMs")
                    if ts is None:  # deviation unspecified: the meter's local time
                        naive = _dt.datetime.fromisoformat(clock["iso"])
                        tz = _dt.timezone(_dt.timedelta(minutes=local_offset_min or 0))
                        ts = int(naive.replace(tzinfo=tz).timestamp() * 1000)
                    status = tuple(clock["status"])
                values.append(ts)
            elif col.ref.has_scaler:
                scaler, _unit = self._scalers.get(col.ref, (None, None))
                values.append(apply_scaler(plain(value), scaler))
            else:
                values.append(plain(value))
        return profile.ProfileRow(ts, tuple(values), status)
