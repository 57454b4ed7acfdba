import Testing

@Test func placeholderAPIGatewayTests() { #expect(true) }
