@_exported import CharTokenizer
@_exported import CharNN
