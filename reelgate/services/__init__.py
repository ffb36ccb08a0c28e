"""Use cases. Each public function is one transaction; entry points call these and nothing below."""
