-- Finished webhook deliveries (delivered, failed, canceled) are deleted with their attempts once they are older than
-- the dispatchers' retention (WEBHOOK_RETENTION_DAYS): found by when they finished, without a scan.
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (updated_at) WHERE state <> 'pending';
