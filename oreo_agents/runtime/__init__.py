"""What a job runs on and with: its processes and devices (`distributed`) and the software that
produced a result (`provenance`)."""
