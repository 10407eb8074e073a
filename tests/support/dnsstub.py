"""A stub authoritative DNS server for tests: answers MX, A, AAAA, TXT and CNAME from a dict over
UDP and TCP on loopback; unknown names answer NXDOMAIN; names can be set to SERVFAIL."""

from __future__ import annotations

import asyncio
import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class StubDns:
    def __init__(self, ttl: int = 300) -> None:
        self.ttl = ttl
        self.zone: dict[str, dict[str, list[str]]] = {}
        self.servfail: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    # --- zone -------------------------------------------------------------------------------

    def _records(self, name: str) -> dict[str, list[str]]:
        return self.zone.setdefault(name.lower().rstrip("."), {})

    def add_mx(self, domain: str, hosts: list[tuple[int, str]]) -> None:
        self._records(domain)["MX"] = [
            f"{pref} {host if host.endswith('.') else host + '.'}" for pref, host in hosts
        ]

    def add_a(self, name: str, address: str) -> None:
        kind = "AAAA" if ":" in address else "A"
        self._records(name).setdefault(kind, []).append(address)

    def add_txt(self, name: str, text: str) -> None:
        chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
        self._records(name).setdefault("TXT", []).append(" ".join(f'"{c}"' for c in chunks))

    def add_cname(self, name: str, target: str) -> None:
        self._records(name)["CNAME"] = [target if target.endswith(".") else target + "."]

    def remove(self, name: str, kind: str) -> None:
        self._records(name).pop(kind, None)

    def set_servfail(self, name: str) -> None:
        self.servfail.add(name.lower().rstrip("."))

    # --- answering ----------------------------------------------------------------------------

    def answer(self, wire: bytes) -> dns.message.Message:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.zone:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            values = self.zone[name].get(rdtype, [])
            if values:
                rrset = dns.rrset.from_text_list(
                    question.name, self.ttl, dns.rdataclass.IN, question.rdtype, values
                )
                response.answer.append(rrset)
        return response

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port)
        self.port = self._tcp.sockets[0].getsockname()[1]
        stub = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple) -> None:
                wire = stub.answer(data).to_wire()
                if len(wire) > 512:  # truncate: the resolver retries over TCP
                    response = stub.answer(data)
                    response.answer.clear()
                    response.flags |= dns.flags.TC
                    wire = response.to_wire()
                self.transport.sendto(wire, addr)

        self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=(host, self.port))
        return self.port

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                wire = self.answer(await reader.readexactly(length)).to_wire()
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()


def load_zone_lines(server: StubDns, text: str) -> None:
    """Records as zone-file lines (`name. IN TYPE rdata`), e.g. the `zone_line`s the sending
    domain API returns; blank lines and `;` comments are skipped."""
    for raw in text.splitlines():
        line = _without_comment(raw).strip()
        if not line:
            continue
        name, _class, kind, rdata = line.split(None, 3)
        server._records(name).setdefault(kind.upper(), []).append(rdata)


def _without_comment(line: str) -> str:
    """The line up to a `;` outside quotes (TXT values hold semicolons)."""
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            return line[:i]
    return line


async def _serve(zone: str, port: int) -> None:
    server = StubDns()
    load_zone_lines(server, zone)
    await server.start(port=port)
    print(f"stub DNS on 127.0.0.1:{server.port} serving {len(server.zone)} names; Ctrl-C ends")
    await asyncio.Event().wait()


if __name__ == "__main__":  # python -m tests.support.dnsstub ZONE_FILE [PORT]: for the README
    import sys
    from pathlib import Path

    zone = Path(sys.argv[1]).read_text()
    asyncio.run(_serve(zone, int(sys.argv[2]) if len(sys.argv) > 2 else 5353))
