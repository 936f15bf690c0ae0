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
}
