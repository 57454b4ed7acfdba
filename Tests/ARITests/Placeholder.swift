import Testing

@Test func placeholderARITests() { #expect(true) }
