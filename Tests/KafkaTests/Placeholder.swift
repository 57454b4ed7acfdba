import Testing

@Test func placeholderKafkaTests() { #expect(true) }
