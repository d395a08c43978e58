"""What the tests share: the test world's constants, data builders, the function apps under test,
uploads and notifications, local reads through the reader, and queries of the loaded rows."""
