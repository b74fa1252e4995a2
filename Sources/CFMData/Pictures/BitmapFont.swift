/// A 5 × 7 bitmap font with descenders for printable ASCII (0x20 … 0x7E), for captions, legends
/// and axis labels drawn into PNGs without a font library. Each glyph is 8 rows of 5 pixels, top
/// row first — capitals and digits use rows 0–6, g j p q y and the comma reach into row 7; a
/// row's bit 4 is its leftmost pixel. Characters are laid out in 6 × 10 cells (one column and two
/// rows of spacing) and scaled by whole pixels.
public enum BitmapFont {
    /// Cell width and height in unscaled pixels.
    public static let cellWidth = 6, cellHeight = 10
    /// Glyph width and height in unscaled pixels.
    public static let glyphWidth = 5, glyphHeight = 8

    /// Glyph rows packed 8 bits each, row 0 in the most significant byte;
    /// index = character code − 0x20.
    private static let glyphs: [UInt64] = [
        0x0000000000000000, // space
        0x0404040404000400, // !
        0x0A0A0A0000000000, // "
        0x0A0A1F0A1F0A0A00, // #
        0x040F140E051E0400, // $
        0x1819020408130300, // %
        0x0C12140815120D00, // &
        0x0C04080000000000, // '
        0x0204080808040200, // (
        0x0804020202040800, // )
        0x0004150E15040000, // *
        0x0004041F04040000, // +
        0x000000000C0C0408, // ,
        0x0000001F00000000, // -
        0x00000000000C0C00, // .
        0x0001020408100000, // /
        0x0E11131519110E00, // 0
        0x040C040404040E00, // 1
        0x0E11010204081F00, // 2
        0x1F02040201110E00, // 3
        0x02060A121F020200, // 4
        0x1F101E0101110E00, // 5
        0x0608101E11110E00, // 6
        0x1F01020408080800, // 7
        0x0E11110E11110E00, // 8
        0x0E11110F01020C00, // 9
        0x000C0C000C0C0000, // :
        0x000C0C000C040800, // ;
        0x0204081008040200, // <
        0x00001F001F000000, // =
        0x0804020102040800, // >
        0x0E11010204000400, // ?
        0x0E11010D15150E00, // @
        0x0E1111111F111100, // A
        0x1E11111E11111E00, // B
        0x0E11101010110E00, // C
        0x1C12111111121C00, // D
        0x1F10101E10101F00, // E
        0x1F10101E10101000, // F
        0x0E11101711110F00, // G
        0x1111111F11111100, // H
        0x0E04040404040E00, // I
        0x0702020202120C00, // J
        0x1112141814121100, // K
        0x1010101010101F00, // L
        0x111B151511111100, // M
        0x1111191513111100, // N
        0x0E11111111110E00, // O
        0x1E11111E10101000, // P
        0x0E11111115120D00, // Q
        0x1E11111E14121100, // R
        0x0F10100E01011E00, // S
        0x1F04040404040400, // T
        0x1111111111110E00, // U
        0x11111111110A0400, // V
        0x1111111515150A00, // W
        0x11110A040A111100, // X
        0x1111110A04040400, // Y
        0x1F01020408101F00, // Z
        0x0E08080808080E00, // [
        0x0010080402010000, // \
        0x0E02020202020E00, // ]
        0x040A110000000000, // ^
        0x0000000000001F00, // _
        0x0804020000000000, // `
        0x00000E010F110F00, // a
        0x1010161911111E00, // b
        0x00000E1010110E00, // c
        0x01010D1311110F00, // d
        0x00000E111F100E00, // e
        0x0609081C08080800, // f
        0x00000F11110F010E, // g
        0x1010161911111100, // h
        0x04000C0404040E00, // i
        0x020006020202120C, // j
        0x1010121418141200, // k
        0x0C04040404040E00, // l
        0x00001A1515111100, // m
        0x0000161911111100, // n
        0x00000E1111110E00, // o
        0x00001E11111E1010, // p
        0x00000F11110F0101, // q
        0x0000161910101000, // r
        0x00000E100E011E00, // s
        0x08081C0808090600, // t
        0x0000111111130D00, // u
        0x00001111110A0400, // v
        0x0000111115150A00, // w
        0x0000110A040A1100, // x
        0x00001111110F010E, // y
        0x00001F0204081F00, // z
        0x0204040804040200, // {
        0x0404040404040400, // |
        0x0804040204040800, // }
        0x0000081502000000, // ~
    ]

    /// Whether pixel (column, row) of `character`'s glyph is set; characters outside printable
    /// ASCII are drawn as '?'.
    public static func isSet(_ character: Character, column: Int, row: Int) -> Bool {
        guard (0..<glyphWidth).contains(column), (0..<glyphHeight).contains(row) else { return false }
        let code = character.asciiValue.flatMap { (0x20...0x7E).contains($0) ? Int($0) : nil } ?? 0x3F
        let bits = glyphs[code - 0x20] >> UInt64(8 * (glyphHeight - 1 - row))
        return bits & (1 << UInt64(glyphWidth - 1 - column)) != 0
    }

    /// Width in pixels of `text` at `scale` (no trailing spacing column).
    public static func width(of text: String, scale: Int) -> Int {
        text.isEmpty ? 0 : (text.count * cellWidth - 1) * scale
    }
}
