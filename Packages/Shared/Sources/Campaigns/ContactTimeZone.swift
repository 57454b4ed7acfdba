import Foundation

/// The time zone a contact most likely lives in, derived from their number, so calling windows can be applied in the
/// contact's local time when the contact list does not say.
///
/// The derivation is deliberately conservative: where a number does not tell the zone (mobile numbers of countries
/// with several zones, non-geographic North American area codes, codes shared by several territories), it returns
/// `nil` and the caller must be told the zone, rather than risk calling someone at 07:00 their time.
public enum ContactTimeZone {
    /// The IANA time zone of the contact at `number`, or `nil` when the number does not determine one.
    ///
    /// North American numbers (+1) are looked up by area code; an area code spanning two zones gives the zone where
    /// most of its population lives. Other numbers give their country's zone when the whole country (as numbered
    /// under that code) keeps one civil time; codes spanning several zones (+7, +52, +55, +61, +62, Spain with the
    /// Canary Islands, Portugal with the Azores, New Zealand with the Chatham Islands...) or shared by territories in
    /// different zones give `nil`.
    public static func derive(for number: PhoneNumber) -> TimeZone? {
        identifier(for: number).flatMap { TimeZone(identifier: $0) }
    }

    /// The IANA identifier `derive(for:)` would use, without building a `TimeZone`.
    public static func identifier(for number: PhoneNumber) -> String? {
        if number.countryCallingCode == 1 {
            // E.164 "+1NXX...": the area code is the three digits after "+1".
            let areaCode = number.e164.utf8.dropFirst(2).prefix(3).reduce(0) { $0 * 10 + Int($1 &- 0x30) }
            return TimeZoneTables.northAmericanAreaCodes[areaCode]
        }
        return TimeZoneTables.callingCodes[number.countryCallingCode]
    }

    /// Every identifier the tables can return, for checking them against the platform's time zone database.
    public static var allIdentifiers: Set<String> {
        Set(TimeZoneTables.northAmericanAreaCodes.values).union(TimeZoneTables.callingCodes.values)
    }

    /// Every North American area code with a known zone.
    public static var knownAreaCodes: Set<Int> { Set(TimeZoneTables.northAmericanAreaCodes.keys) }
}

enum TimeZoneTables {
    /// Area code -> IANA zone, built from `northAmericanZones`.
    static let northAmericanAreaCodes: [Int: String] = {
        var table: [Int: String] = [:]
        for (zone, codes) in northAmericanZones {
            for code in codes {
                precondition(table[code] == nil, "area code \(code) is listed twice")
                table[code] = zone
            }
        }
        return table
    }()

    /// Geographic North American area codes (US, Canada, US territories, Caribbean members) by zone. Non-geographic
    /// codes (toll-free 8XX, 500s, 600, 700, 900) are absent on purpose: they say nothing about where the callee is.
    ///
    /// Split areas, with the zone chosen for the majority of the population: 208/986 Idaho (Boise, Mountain),
    /// 270/364 western Kentucky (Central), 423 East Tennessee (Eastern), 850/448 Florida Panhandle (Pensacola and
    /// Panama City, Central), 812/930 southern Indiana (Eastern), 701 North Dakota, 605 South Dakota and 308
    /// Nebraska (Central), 915 El Paso (Mountain), 541 Oregon (Pacific), 906 Michigan's Upper Peninsula (Eastern),
    /// 250 British Columbia (Pacific), 807 north-western Ontario (Eastern), 709 Newfoundland and Labrador
    /// (Newfoundland), 867 the territories (Mountain: the Northwest Territories and western Nunavut outnumber
    /// Yukon).
    static let northAmericanZones: [(String, [Int])] = [
        (
            "America/New_York",
            [
                // Connecticut, Delaware, DC, Florida (peninsula), Georgia, Maine, Maryland, Massachusetts.
                203, 475, 860, 959, 302, 202, 771, 239, 305, 321, 324, 352, 386, 407, 561, 645, 656, 689, 727, 728,
                754, 772, 786, 813, 863, 904, 941, 954, 229, 404, 470, 478, 678, 706, 762, 770, 912, 943, 207, 227,
                240, 301, 410, 443, 667, 339, 351, 413, 508, 617, 774, 781, 857, 978,
                // Kentucky (east), New Hampshire, New Jersey, New York, North Carolina.
                606, 859, 603, 201, 551, 609, 640, 732, 848, 856, 862, 908, 973, 212, 315, 329, 332, 347, 363, 516,
                518, 585, 607, 624, 631, 646, 680, 716, 718, 838, 845, 914, 917, 929, 934, 252, 336, 472, 704, 743,
                828, 910, 919, 980, 984,
                // Ohio, Pennsylvania, Rhode Island, South Carolina, Tennessee (east), Vermont, Virginia, West Virginia.
                216, 220, 234, 283, 326, 330, 380, 419, 436, 440, 513, 567, 614, 740, 937, 215, 223, 267, 272, 412,
                445, 484, 570, 582, 610, 717, 724, 814, 835, 878, 401, 803, 839, 843, 854, 864, 423, 865, 802, 276,
                434, 540, 571, 686, 703, 757, 804, 826, 948, 304, 681,
            ]
        ),
        ("America/Detroit", [231, 248, 269, 313, 517, 586, 616, 679, 734, 810, 906, 947, 989]),
        ("America/Indiana/Indianapolis", [260, 317, 463, 574, 765, 812, 930]),
        ("America/Kentucky/Louisville", [502]),
        (
            "America/Chicago",
            [
                // Alabama, Arkansas, Florida (panhandle), Illinois, Indiana (north-west), Iowa, Kansas, Kentucky (west).
                205, 251, 256, 334, 659, 938, 327, 479, 501, 870, 448, 850, 217, 224, 309, 312, 331, 447, 464, 618,
                630, 708, 730, 773, 779, 815, 847, 861, 872, 219, 319, 515, 563, 641, 712, 316, 620, 785, 913, 270,
                364,
                // Louisiana, Minnesota, Mississippi, Missouri, Nebraska, North and South Dakota, Oklahoma.
                225, 318, 337, 457, 504, 985, 218, 320, 507, 612, 651, 763, 924, 952, 228, 601, 662, 769, 235, 314,
                417, 557, 573, 636, 660, 816, 308, 402, 531, 701, 605, 405, 539, 572, 580, 918,
                // Tennessee (middle and west), Texas, Wisconsin.
                615, 629, 731, 901, 931, 210, 214, 254, 281, 325, 346, 361, 409, 430, 432, 469, 512, 682, 713, 726,
                737, 806, 817, 830, 832, 903, 936, 940, 945, 956, 972, 979, 262, 274, 353, 414, 534, 608, 715, 920,
            ]
        ),
        ("America/Denver", [303, 719, 720, 970, 983, 406, 505, 575, 385, 435, 801, 307, 915]),
        ("America/Boise", [208, 986]),
        ("America/Phoenix", [480, 520, 602, 623, 928]),
        (
            "America/Los_Angeles",
            [
                // California, Nevada, Oregon, Washington.
                209, 213, 279, 310, 323, 341, 350, 357, 369, 408, 415, 424, 442, 510, 530, 559, 562, 619, 626, 628,
                650, 657, 661, 669, 707, 714, 747, 760, 805, 818, 820, 840, 858, 909, 916, 925, 949, 951, 702, 725,
                775, 458, 503, 541, 971, 206, 253, 360, 425, 509, 564,
            ]
        ),
        ("America/Anchorage", [907]),
        ("Pacific/Honolulu", [808]),
        // US territories.
        ("America/Puerto_Rico", [787, 939]),
        ("America/St_Thomas", [340]),
        ("Pacific/Guam", [671]),
        ("Pacific/Saipan", [670]),
        ("Pacific/Pago_Pago", [684]),
        // Canada.
        ("America/St_Johns", [709, 879]),
        ("America/Halifax", [782, 902]),
        ("America/Moncton", [428, 506]),
        (
            "America/Toronto",
            [
                // Ontario, Quebec.
                226, 249, 289, 343, 365, 382, 416, 437, 519, 548, 613, 647, 683, 705, 742, 753, 807, 905, 942, 263,
                354, 367, 418, 438, 450, 468, 514, 579, 581, 819, 873,
            ]
        ),
        ("America/Winnipeg", [204, 431, 584]),
        ("America/Regina", [306, 474, 639]),
        ("America/Edmonton", [368, 403, 587, 780, 825, 867]),
        ("America/Vancouver", [236, 250, 257, 604, 672, 778]),
        // Caribbean and Atlantic members.
        ("America/Nassau", [242]),
        ("America/Barbados", [246]),
        ("America/Anguilla", [264]),
        ("America/Antigua", [268]),
        ("America/Tortola", [284]),
        ("America/Cayman", [345]),
        ("Atlantic/Bermuda", [441]),
        ("America/Grenada", [473]),
        ("America/Grand_Turk", [649]),
        ("America/Jamaica", [658, 876]),
        ("America/Montserrat", [664]),
        ("America/Lower_Princes", [721]),
        ("America/St_Lucia", [758]),
        ("America/Dominica", [767]),
        ("America/St_Vincent", [784]),
        ("America/Santo_Domingo", [809, 829, 849]),
        ("America/Port_of_Spain", [868]),
        ("America/St_Kitts", [869]),
    ]

    /// Country calling code -> IANA zone, for codes whose whole numbering area keeps one civil time.
    ///
    /// Absent on purpose: 1 (by area code instead), 7, 52, 55, 56, 61, 62, 64 and 34, 351, 593 (countries with
    /// several zones, however small the minority), 243 (DR Congo), 262 (Réunion and Mayotte), 299 (Greenland), 590
    /// and 599 (shared by several territories), 672, 675 (Bougainville), 686, 689, 691, 970 (Gaza and the West Bank
    /// have had different rules), 976 (Mongolia), and the global services 800, 808, 870, 881-883, 979.
    /// +380 is Europe/Kyiv: Crimean operators have numbered under +7 since 2015.
    static let callingCodes: [Int: String] = [
        20: "Africa/Cairo", 27: "Africa/Johannesburg", 30: "Europe/Athens", 31: "Europe/Amsterdam",
        32: "Europe/Brussels", 33: "Europe/Paris", 36: "Europe/Budapest", 39: "Europe/Rome", 40: "Europe/Bucharest",
        41: "Europe/Zurich", 43: "Europe/Vienna", 44: "Europe/London", 45: "Europe/Copenhagen",
        46: "Europe/Stockholm", 47: "Europe/Oslo", 48: "Europe/Warsaw", 49: "Europe/Berlin", 51: "America/Lima",
        53: "America/Havana", 54: "America/Argentina/Buenos_Aires", 57: "America/Bogota", 58: "America/Caracas",
        60: "Asia/Kuala_Lumpur", 63: "Asia/Manila", 65: "Asia/Singapore", 66: "Asia/Bangkok", 81: "Asia/Tokyo",
        82: "Asia/Seoul", 84: "Asia/Ho_Chi_Minh", 86: "Asia/Shanghai", 90: "Europe/Istanbul", 91: "Asia/Kolkata",
        92: "Asia/Karachi", 93: "Asia/Kabul", 94: "Asia/Colombo", 95: "Asia/Yangon", 98: "Asia/Tehran",
        211: "Africa/Juba", 212: "Africa/Casablanca", 213: "Africa/Algiers", 216: "Africa/Tunis",
        218: "Africa/Tripoli", 220: "Africa/Banjul", 221: "Africa/Dakar", 222: "Africa/Nouakchott",
        223: "Africa/Bamako", 224: "Africa/Conakry", 225: "Africa/Abidjan", 226: "Africa/Ouagadougou",
        227: "Africa/Niamey", 228: "Africa/Lome", 229: "Africa/Porto-Novo", 230: "Indian/Mauritius",
        231: "Africa/Monrovia", 232: "Africa/Freetown", 233: "Africa/Accra", 234: "Africa/Lagos",
        235: "Africa/Ndjamena", 236: "Africa/Bangui", 237: "Africa/Douala", 238: "Atlantic/Cape_Verde",
        239: "Africa/Sao_Tome", 240: "Africa/Malabo", 241: "Africa/Libreville", 242: "Africa/Brazzaville",
        244: "Africa/Luanda", 245: "Africa/Bissau", 246: "Indian/Chagos", 247: "Atlantic/St_Helena",
        248: "Indian/Mahe", 249: "Africa/Khartoum", 250: "Africa/Kigali", 251: "Africa/Addis_Ababa",
        252: "Africa/Mogadishu", 253: "Africa/Djibouti", 254: "Africa/Nairobi", 255: "Africa/Dar_es_Salaam",
        256: "Africa/Kampala", 257: "Africa/Bujumbura", 258: "Africa/Maputo", 260: "Africa/Lusaka",
        261: "Indian/Antananarivo", 263: "Africa/Harare", 264: "Africa/Windhoek", 265: "Africa/Blantyre",
        266: "Africa/Maseru", 267: "Africa/Gaborone", 268: "Africa/Mbabane", 269: "Indian/Comoro",
        290: "Atlantic/St_Helena", 291: "Africa/Asmara", 297: "America/Aruba", 298: "Atlantic/Faroe",
        350: "Europe/Gibraltar", 352: "Europe/Luxembourg", 353: "Europe/Dublin", 354: "Atlantic/Reykjavik",
        355: "Europe/Tirane", 356: "Europe/Malta", 357: "Asia/Nicosia", 358: "Europe/Helsinki", 359: "Europe/Sofia",
        370: "Europe/Vilnius", 371: "Europe/Riga", 372: "Europe/Tallinn", 373: "Europe/Chisinau",
        374: "Asia/Yerevan", 375: "Europe/Minsk", 376: "Europe/Andorra", 377: "Europe/Monaco",
        378: "Europe/San_Marino", 379: "Europe/Vatican", 380: "Europe/Kyiv", 381: "Europe/Belgrade",
        382: "Europe/Podgorica", 383: "Europe/Belgrade", 385: "Europe/Zagreb", 386: "Europe/Ljubljana",
        387: "Europe/Sarajevo", 389: "Europe/Skopje", 420: "Europe/Prague", 421: "Europe/Bratislava",
        423: "Europe/Vaduz", 500: "Atlantic/Stanley", 501: "America/Belize", 502: "America/Guatemala",
        503: "America/El_Salvador", 504: "America/Tegucigalpa", 505: "America/Managua", 506: "America/Costa_Rica",
        507: "America/Panama", 508: "America/Miquelon", 509: "America/Port-au-Prince", 591: "America/La_Paz",
        592: "America/Guyana", 594: "America/Cayenne", 595: "America/Asuncion", 596: "America/Martinique",
        597: "America/Paramaribo", 598: "America/Montevideo", 670: "Asia/Dili", 673: "Asia/Brunei",
        674: "Pacific/Nauru", 676: "Pacific/Tongatapu", 677: "Pacific/Guadalcanal", 678: "Pacific/Efate",
        679: "Pacific/Fiji", 680: "Pacific/Palau", 681: "Pacific/Wallis", 682: "Pacific/Rarotonga",
        683: "Pacific/Niue", 685: "Pacific/Apia", 687: "Pacific/Noumea", 688: "Pacific/Funafuti",
        690: "Pacific/Fakaofo", 692: "Pacific/Majuro", 850: "Asia/Pyongyang", 852: "Asia/Hong_Kong",
        853: "Asia/Macau", 855: "Asia/Phnom_Penh", 856: "Asia/Vientiane", 880: "Asia/Dhaka", 886: "Asia/Taipei",
        960: "Indian/Maldives", 961: "Asia/Beirut", 962: "Asia/Amman", 963: "Asia/Damascus", 964: "Asia/Baghdad",
        965: "Asia/Kuwait", 966: "Asia/Riyadh", 967: "Asia/Aden", 968: "Asia/Muscat", 971: "Asia/Dubai",
        972: "Asia/Jerusalem", 973: "Asia/Bahrain", 974: "Asia/Qatar", 975: "Asia/Thimphu", 977: "Asia/Kathmandu",
        992: "Asia/Dushanbe", 993: "Asia/Ashgabat", 994: "Asia/Baku", 995: "Asia/Tbilisi", 996: "Asia/Bishkek",
        998: "Asia/Tashkent",
    ]
}
