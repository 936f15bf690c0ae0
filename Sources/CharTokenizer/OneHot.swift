/// A dense one-hot matrix of shape `(rows, columns)` = (sequence length, vocabulary size),
/// row-major: row `r` is all zeros except a 1 in the column of the `r`-th id.
public struct OneHotMatrix: Sendable, Equatable {
    /// Sequence length.
    public let rows: Int
    /// Vocabulary size.
    public let columns: Int
    /// `(rows, columns)` row-major.
    public let values: [Float]

    /// The value at `(row, column)`.
    public subscript(row: Int, column: Int) -> Float {
        values[row * columns + column]
    }
}

/// The sparse form of a one-hot matrix: the hot column of each row. Multiplying a weight
/// matrix by the dense form is a gather of these columns.
public struct OneHotIndices: Sendable, Equatable {
    /// Sequence length.
    public let rows: Int
    /// Vocabulary size.
    public let columns: Int
    /// `(rows,)`: the column holding the 1 in each row.
    public let columnIndices: [Int]

    /// Positions of the ones in the row-major dense matrix: `row * columns + column`.
    public var flatIndices: [Int] {
        columnIndices.enumerated().map { $0.offset * columns + $0.element }
    }

    /// The dense matrix.
    public func dense() -> OneHotMatrix {
        var values = [Float](repeating: 0, count: rows * columns)
        for (row, column) in columnIndices.enumerated() {
            values[row * columns + column] = 1
        }
        return OneHotMatrix(rows: rows, columns: columns, values: values)
    }
}

extension Tokenizer {
    /// The one-hot rows of `ids` as a dense `(ids.count, vocabularySize)` matrix.
    /// - Throws: `TokenizerError.invalidTokenID`.
    public func oneHot(_ ids: some Sequence<Int32>) throws -> OneHotMatrix {
        try oneHotIndices(ids).dense()
    }

    /// The one-hot rows of `ids` in index form.
    /// - Throws: `TokenizerError.invalidTokenID`.
    public func oneHotIndices(_ ids: some Sequence<Int32>) throws -> OneHotIndices {
        var columns: [Int] = []
        for id in ids {
            guard id >= 0 && Int(id) < vocabularySize else {
                throw TokenizerError.invalidTokenID(Int64(id), vocabularySize: vocabularySize)
            }
            columns.append(Int(id))
        }
        return OneHotIndices(rows: columns.count, columns: vocabularySize, columnIndices: columns)
    }
}
