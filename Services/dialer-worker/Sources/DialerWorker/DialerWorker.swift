// DialerWorker
