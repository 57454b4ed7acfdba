import Testing

@Test func placeholderCallDomainTests() { #expect(true) }
