import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server on POSIX sockets: one thread per connection, keep-alive, bodies by
/// Content-Length only, and hard limits on everything a client sends. `charlm serve` runs on
/// it (see `ServeCommand` for why not a framework).
public final class HTTPServer: @unchecked Sendable {
    public struct Limits: Sendable {
        public var maxBodyBytes = 1 << 20
        public var maxHeaderBytes = 16 << 10
        public var maxConnections = 256
        /// Seconds a client has to send a request's head and body once it starts.
        public var requestSeconds = 15
        /// Seconds an idle keep-alive connection stays open.
        public var idleSeconds = 60
        /// Seconds a write may wait for a client that does not read before the connection is dropped.
        public var sendSeconds = 30

        public init() {}
    }

    public let limits: Limits
    private let listener: Int32
    /// The address and port actually bound (the port is chosen by the system for port 0).
    public let boundDescription: String
    public let port: Int
    private let lock = NSLock()
    private var connections = 0

    /// Binds and listens; throws a message naming the address on failure.
    public init(host: String, port: Int, limits: Limits) throws {
        self.limits = limits
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw ServeError("cannot resolve --host \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var fd: Int32 = -1
        var lastError = "no address"
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let info = node {
            node = info.pointee.ai_next
            let s = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if s < 0 { continue }
            var one: Int32 = 1
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if bind(s, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 && listen(s, 128) == 0 {
                fd = s
                break
            }
            lastError = String(cString: strerror(errno))
            close(s)
        }
        guard fd >= 0 else { throw ServeError("cannot listen on \(host):\(port): \(lastError)") }
        listener = fd
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let (name, boundPort) = Self.describe(address)
        self.port = boundPort
        boundDescription = name.contains(":") ? "[\(name)]:\(boundPort)" : "\(name):\(boundPort)"
    }

    /// Accepts connections until the process ends; each is served on its own thread by `handler`,
    /// which is called once per request and must answer it through the connection.
    public func run(_ handler: @escaping @Sendable (HTTPRequest, HTTPConnection) -> Void) -> Never {
        while true {
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener, $0, &length) }
            }
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                // Out of descriptors or memory: wait for connections to close.
                usleep(50_000)
                continue
            }
            let peer = Self.describe(address).0
            lock.lock()
            let admitted = connections < limits.maxConnections
            if admitted { connections += 1 }
            lock.unlock()
            let connection = HTTPConnection(fd: fd, peer: peer, limits: limits)
            guard admitted else {
                connection.send(
                    status: 503, headers: [("Content-Type", "application/json"), ("Retry-After", "1")],
                    body: Array(#"{"error":{"message":"too many connections","type":"server_overloaded"}}"#.utf8),
                    keepAlive: false)
                connection.close()
                continue
            }
            let thread = Thread { [self] in
                connection.serve(handler)
                connection.close()
                lock.lock()
                connections -= 1
                lock.unlock()
            }
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    static func describe(_ address: sockaddr_storage) -> (String, Int) {
        var address = address
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo(
                    $0, socklen_t(MemoryLayout<sockaddr_storage>.size), &host, socklen_t(host.count), &service,
                    socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard status == 0 else { return ("?", 0) }
        func text(_ chars: [CChar]) -> String {
            String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return (text(host), Int(text(service)) ?? 0)
    }
}

public struct ServeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One parsed request.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path, without the query.
    public var path: String
    public var query: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var keepAlive: Bool
    /// "HTTP/1.1" or "HTTP/1.0".
    public var version = "HTTP/1.1"

    /// The first header of that name (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

extension HTTPRequest {
    public struct HeadError: Error, Equatable {
        public var status: Int
        public var message: String
    }

    /// Parses a request head (without its final blank line): the request line, then headers.
    /// The body is left empty. Total: never traps, whatever the bytes.
    public static func parseHead(_ bytes: ArraySlice<UInt8>) -> Result<HTTPRequest, HeadError> {
        // Control characters (other than CR LF and tab) have no place in a head; refusing them
        // also keeps them out of the log.
        var previous: UInt8 = 0
        for byte in bytes {
            let bareLF = byte == 10 && previous != 13
            let bareCR = previous == 13 && byte != 10
            if (byte < 32 && byte != 13 && byte != 10 && byte != 9) || byte == 127 || bareLF || bareCR {
                return .failure(HeadError(status: 400, message: "control characters in the request head"))
            }
            previous = byte
        }
        if previous == 13 { return .failure(HeadError(status: 400, message: "control characters in the request head")) }
        let head = String(decoding: bytes, as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1."), !requestLine[0].isEmpty,
            requestLine[1].hasPrefix("/")
        else {
            return .failure(HeadError(status: 400, message: "malformed request line"))
        }
        var headers: [(String, String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                return .failure(HeadError(status: 400, message: "malformed header line"))
            }
            headers.append(
                (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let target = String(requestLine[1])
        let pathPart = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var request = HTTPRequest(
            method: String(requestLine[0]), path: String(pathPart[0]),
            query: pathPart.count > 1 ? String(pathPart[1]) : "", headers: headers, body: [], keepAlive: true)
        let connection = request.header("Connection")?.lowercased() ?? ""
        request.version = requestLine[2] == "HTTP/1.1" ? "HTTP/1.1" : "HTTP/1.0"
        request.keepAlive =
            requestLine[2] == "HTTP/1.1" ? !connection.contains("close") : connection.contains("keep-alive")
        return .success(request)
    }
}

/// A client connection: reads requests, writes responses, and tells whether the client left.
public final class HTTPConnection: @unchecked Sendable {
    let fd: Int32
    let peer: String
    let limits: HTTPServer.Limits
    private var buffer: [UInt8] = []
    private var closed = false
    /// Set when a write failed: the client is gone.
    private(set) var broken = false

    init(fd: Int32, peer: String, limits: HTTPServer.Limits) {
        self.fd = fd
        self.peer = peer
        self.limits = limits
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        // A client that stops reading cannot hold its thread in send() for ever.
        var timeout = timeval(tv_sec: limits.sendSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    /// Serves requests until the client closes, asks to close, or breaks a limit.
    func serve(_ handler: (HTTPRequest, HTTPConnection) -> Void) {
        var first = true
        while !broken {
            switch readRequest(idle: first ? limits.requestSeconds : limits.idleSeconds) {
            case .request(let request):
                handler(request, self)
                if !request.keepAlive || broken || closeAfterResponse { return }
            case .closed:
                return
            case .error(let status, let message):
                send(
                    status: status, headers: [("Content-Type", "application/json")],
                    body: Array(OpenAIError(status: status, message: message).json.utf8), keepAlive: false)
                drain()
                return
            }
            first = false
        }
    }

    enum ReadResult {
        case request(HTTPRequest)
        case closed
        case error(Int, String)
    }

    /// Reads one request: the head within `maxHeaderBytes`, then a Content-Length body within
    /// `maxBodyBytes`, all within `requestSeconds` of its first byte.
    func readRequest(idle: Int) -> ReadResult {
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        var deadline: Date?
        var headEnd: Int?
        var searched = 0
        while headEnd == nil {
            // Only the new bytes (and the 3 before them) can complete the blank line.
            if let end = Self.find(crlfcrlf, in: buffer, from: max(0, searched - 3)) {
                guard end <= limits.maxHeaderBytes else { break }
                headEnd = end
                break
            }
            searched = buffer.count
            if buffer.count > limits.maxHeaderBytes + 3 { break }
            let wait = deadline.map { $0.timeIntervalSinceNow } ?? Double(idle)
            guard wait > 0, fill(timeout: wait) else {
                return buffer.isEmpty ? .closed : .error(408, "the request did not arrive in time")
            }
            if deadline == nil { deadline = Date().addingTimeInterval(Double(limits.requestSeconds)) }
        }
        guard headEnd != nil else { return .error(431, "the request head is over \(limits.maxHeaderBytes) bytes") }
        let parsed = HTTPRequest.parseHead(buffer[..<headEnd!])
        buffer.removeFirst(headEnd! + 4)
        guard case .success(var request) = parsed else {
            if case .failure(let error) = parsed { return .error(error.status, error.message) }
            return .closed
        }
        if request.header("Transfer-Encoding") != nil {
            return .error(411, "chunked request bodies are not supported: send a Content-Length")
        }
        var length = 0
        let lengths = Set(
            request.headers.filter { $0.name.caseInsensitiveCompare("Content-Length") == .orderedSame }.map(\.value))
        if lengths.count > 1 { return .error(400, "conflicting Content-Length headers") }
        if let value = request.header("Content-Length") {
            guard !value.isEmpty, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), value.count <= 12, let n = Int(value)
            else {
                return .error(400, "malformed Content-Length")
            }
            length = n
        }
        if length > limits.maxBodyBytes {
            return .error(
                413, "the body is \(length) bytes; this server takes at most \(limits.maxBodyBytes) (--max-body)")
        }
        if length > buffer.count, request.header("Expect")?.lowercased() == "100-continue" {
            _ = write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        let bodyDeadline = Date().addingTimeInterval(Double(limits.requestSeconds))
        while buffer.count < length {
            let wait = bodyDeadline.timeIntervalSinceNow
            guard wait > 0, fill(timeout: wait) else { return .error(408, "the body did not arrive in time") }
        }
        request.body = Array(buffer[..<length])
        buffer.removeFirst(length)
        return .request(request)
    }

    /// Reads what is available within `timeout` seconds; false on end of stream, error or timeout.
    private func fill(timeout: Double) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(min(timeout * 1000, 3_600_000)))
        guard ready > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return false }
        buffer += chunk[..<n]
        return true
    }

    /// Reads and drops what the client is still sending (up to 64 MB or 2 s), so that it sees
    /// the error response rather than a reset.
    private func drain() {
        shutdown(fd, Int32(SHUT_WR))
        let end = Date().addingTimeInterval(2)
        var total = 0
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while total < 64 << 20 {
            let wait = end.timeIntervalSinceNow
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard wait > 0, poll(&descriptor, 1, Int32(wait * 1000)) > 0 else { return }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            total += n
        }
    }

    /// Whether the client has closed its side (checked without blocking, data left unread).
    var clientGone: Bool {
        if broken { return true }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 0) > 0 else { return false }
        if descriptor.revents & Int16(POLLERR | POLLHUP) != 0 { return true }
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }

    /// Writes all of `bytes`; false (and `broken`) when the client is gone.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        guard !broken else { return false }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                broken = true
                return false
            }
            sent += n
        }
        return true
    }

    static let reasons: [Int: String] = [
        200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
        403: "Forbidden", 405: "Method Not Allowed", 408: "Request Timeout", 415: "Unsupported Media Type",
        411: "Length Required", 413: "Content Too Large",
        429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
        503: "Service Unavailable",
    ]

    private func head(status: Int, headers: [(String, String)], keepAlive: Bool) -> String {
        var text = "HTTP/1.1 \(status) \(Self.reasons[status] ?? "Status")\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Connection: \(keepAlive ? "keep-alive" : "close")\r\n"
        return text
    }

    /// A whole response.
    func send(status: Int, headers: [(String, String)], body: [UInt8], keepAlive: Bool) {
        let text =
            head(status: status, headers: headers, keepAlive: keepAlive) + "Content-Length: \(body.count)\r\n\r\n"
        write(Array(text.utf8) + body)
    }

    /// Starts a streamed response; follow with `sendChunk` and `endChunks`. HTTP/1.1 gets
    /// chunked encoding; HTTP/1.0, which has none, gets the bytes as they are and the end of the
    /// connection as the end of the body.
    func startChunks(status: Int, headers: [(String, String)], request: HTTPRequest) {
        chunked = request.version == "HTTP/1.1"
        if !chunked { closeAfterResponse = true }
        let framing = chunked ? "Transfer-Encoding: chunked\r\n" : ""
        let keepAlive = chunked && request.keepAlive
        write(Array((head(status: status, headers: headers, keepAlive: keepAlive) + framing + "\r\n").utf8))
    }

    private var chunked = true
    /// Set by a response whose end is the end of the connection (a stream to HTTP/1.0).
    private(set) var closeAfterResponse = false

    @discardableResult
    func sendChunk(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return !broken }
        guard chunked else { return write(bytes) }
        return write(Array((String(bytes.count, radix: 16) + "\r\n").utf8) + bytes + [13, 10])
    }

    func endChunks() {
        if chunked { write(Array("0\r\n\r\n".utf8)) }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int = 0) -> Int? {
        guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        for i in start...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        }
        return nil
    }
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
public struct OpenAIError: Error, Sendable {
    public var status: Int
    public var message: String
    public var param: String?
    public var code: String?

    public init(status: Int, message: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.param = param
        self.code = code
    }

    var type: String {
        switch status {
        case 401: "authentication_error"
        case 404: "not_found_error"
        case 429: "rate_limit_exceeded"
        case 500...: "server_error"
        default: "invalid_request_error"
        }
    }

    var json: String {
        let error: [String: Any] = [
            "message": message, "type": type, "param": param.map { $0 as Any } ?? NSNull(),
            "code": code.map { $0 as Any } ?? NSNull(),
        ]
        return JSON.encode(["error": error])
    }
}
