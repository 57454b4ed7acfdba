import Testing

@Test func placeholderDialerWorkerTests() { #expect(true) }
