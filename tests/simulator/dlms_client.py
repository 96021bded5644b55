"""A plain synchronous gurux client over a socket, as the real connector talks, for tests.

Frames are split with the project's framing readers and parsed with ``GXDLMSClient.getData``;
nothing here knows about the simulator's internals, so passing tests mean byte-level
interoperability with gurux's client.
"""
from __future__ import annotations

import socket

from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType, ObjectType, Security
from gurux_dlms.objects import (
    GXDLMSClock,
    GXDLMSData,
    GXDLMSDisconnectControl,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)
from gurux_dlms.secure import GXDLMSSecureClient

from tb_dlms.protocol.framing import HdlcFrameReader, WrapperFrameReader

_AUTH = {"none": Authentication.NONE, "low": Authentication.LOW, "high_gmac": Authentication.HIGH_GMAC}


class AccessError(Exception):
    """The meter answered with a data-access-result error (gurux reports it in reply.error)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"data access error {code}")
        self.code = code


class Closed(Exception):
    """The meter closed the connection (FIN or RST)."""


class DlmsTestClient:
    def __init__(self, host: str, port: int, *, interface: str = "wrapper", client: int = 16,
                 server: int = 1, auth: str = "none", password: str | None = None,
                 system_title: bytes = b"TESTCLNT", block_cipher_key: bytes = bytes(range(16)),
                 authentication_key: bytes = bytes(range(0xD0, 0xE0)), invocation_counter: int = 0,
                 pdu: int = 512, max_info: int = 128, timeout: float = 2.0,
                 server_address_size: int = 0) -> None:
        itype = InterfaceType.HDLC if interface == "hdlc" else InterfaceType.WRAPPER
        pw = password.encode() if password else None
        if auth == "high_gmac":
            c = GXDLMSSecureClient(True, client, server, Authentication.HIGH_GMAC, None, itype)
            c.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
            c.ciphering.systemTitle = system_title
            c.ciphering.blockCipherKey = block_cipher_key
            c.ciphering.authenticationKey = authentication_key
            c.ciphering.invocationCounter = invocation_counter
        else:
            c = GXDLMSClient(True, client, server, _AUTH[auth], pw, itype)
        c.maxReceivePDUSize = pdu
        if server_address_size:
            c.serverAddressSize = server_address_size
        if max_info != 128:
            c.hdlcSettings.maxInfoRX = max_info
            c.hdlcSettings.maxInfoTX = max_info
        self.client = c
        self.hdlc = itype == InterfaceType.HDLC
        self.reader = HdlcFrameReader() if self.hdlc else WrapperFrameReader()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.aare_error: Exception | None = None

    # ---- raw I/O ----------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(bytes(data))

    def recv_frame(self) -> bytes:
        while True:
            frames = self.reader.feed(b"")
            if frames:  # pragma: no cover - reader returns frames on feed only
                return frames[0].raw
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError as exc:
                raise Closed("reset") from exc
            if not chunk:
                raise Closed("closed")
            frames = self.reader.feed(chunk)
            if frames:
                self._pending = frames[1:]
                return frames[0].raw

    def recv_raw(self, n: int = 4096) -> bytes:
        return self.sock.recv(n)

    def exchange(self, frame: bytes, reply: GXReplyData) -> None:
        """Send one frame, parse reply frames until gurux has a whole message part."""
        self.send(frame)
        notify = GXReplyData()
        while True:
            raw = self.recv_frame()
            if self.client.getData(GXByteBuffer(raw), reply, notify):
                return

    def transact(self, frames) -> GXReplyData:
        reply = GXReplyData()
        if isinstance(frames, (bytes, bytearray)):
            frames = [frames]
        for f in frames:
            reply.clear()
            self.exchange(f, reply)
        while reply.isMoreData():
            self.exchange(self.client.receiverReady(reply), reply)
        if reply.error:
            raise AccessError(reply.error)
        return reply

    # ---- session ----------------------------------------------------------------------
    def connect(self) -> "DlmsTestClient":
        if self.hdlc:
            reply = self.transact(self.client.snrmRequest())
            self.client.parseUAResponse(reply.data)
        reply = self.transact(self.client.aarqRequest())
        self.client.parseAareResponse(reply.data)
        if self.client.authentication > Authentication.LOW:
            reply = self.transact(self.client.getApplicationAssociationRequest())
            self.client.parseApplicationAssociationResponse(reply.data)
        return self

    def read(self, obj, index: int):
        reply = self.transact(self.client.read(obj, index))
        return self.client.updateValue(obj, index, reply.value)

    def read_list(self, items):
        values = []
        for msg in self.client.readList(items):
            reply = self.transact(msg)
            values.extend(reply.value)
        self.client.updateValues(items, values)
        return values

    def write(self, obj, index: int) -> None:
        self.transact(self.client.write(obj, index))

    def method(self, obj, index: int, value=0, dtype=None):
        from gurux_dlms.enums import DataType
        return self.transact(self.client.method(obj, index, value, dtype or DataType.INT8))

    def rows_by_range(self, pg, start, end):
        reply = self.transact(self.client.readRowsByRange(pg, start, end))
        return self.client.updateValue(pg, 2, reply.value)

    def rows_by_entry(self, pg, index, count):
        reply = self.transact(self.client.readRowsByEntry(pg, index, count))
        return self.client.updateValue(pg, 2, reply.value)

    def release(self) -> None:
        try:
            self.transact(self.client.releaseRequest())
            if self.hdlc:
                self.transact(self.client.disconnectRequest())
        except (Closed, OSError):
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def register(ln: str) -> GXDLMSRegister:
    return GXDLMSRegister(ln)


def data(ln: str) -> GXDLMSData:
    return GXDLMSData(ln)


def load_profile(ln: str = "1.0.99.1.0.255") -> GXDLMSProfileGeneric:
    return GXDLMSProfileGeneric(ln)


__all__ = ["DlmsTestClient", "Closed", "AccessError", "register", "data", "load_profile", "GXDLMSClock",
           "GXDLMSDisconnectControl", "ObjectType"]


def client_for(sim, name: str, *, public: bool = False, timeout: float = 2.0, **kw) -> DlmsTestClient:
    """A client with the right addresses and credentials for meter ``name``."""
    spec = sim.meter(name).spec
    opts = dict(interface=spec.interface, server=spec.server_address, timeout=timeout)
    if spec.interface == "hdlc" and (spec.address_size == 4 or spec.server_address > 0x3FFF):
        opts["server_address_size"] = 4
    if not public and spec.auth != "none":
        opts.update(client=spec.client_address, auth=spec.auth)
        if spec.auth == "low":
            opts["password"] = spec.password
        else:
            opts.update(system_title=b"TESTCLNT", block_cipher_key=spec.block_cipher_key,
                        authentication_key=spec.authentication_key,
                        invocation_counter=sim.meter(name).invocation_counter + 1)
    opts.update(kw)
    return DlmsTestClient(sim.host, sim.port_of(name), **opts)
