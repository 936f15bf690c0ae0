import Foundation

/// JSON text from plain values (dictionaries, arrays, strings, numbers, booleans, NSNull),
/// keys sorted; NaN and infinities become null.
public enum JSON {
    public static func encode(_ object: [String: Any]) -> String {
        func clean(_ value: Any) -> Any {
            switch value {
            case let d as Double: return d.isFinite ? d : NSNull()
            case let f as Float: return f.isFinite ? Double(f) : NSNull()
            case let a as [Any]: return a.map(clean)
            case let o as [String: Any]: return o.mapValues(clean)
            default: return value
            }
        }
        let data =
            (try? JSONSerialization.data(
                withJSONObject: clean(object), options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// A JSON string literal.
    public static func quote(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029:
                out +=
                    "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A JSON number (null when not finite).
    public static func number(_ value: Double) -> String {
        value.isFinite ? "\(value)" : "null"
    }
}
