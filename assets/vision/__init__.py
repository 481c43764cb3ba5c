"""Stage: vision. Persons, pose keypoints, OCR, faces and image features, and their promotion."""
