"""Testing eventwire services: contract cases (`eventwire.testing.contract`)."""
