import Testing

@Test func placeholderCallStoreTests() { #expect(true) }
