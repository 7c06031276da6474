"""The release pipeline: builds, stage sign-offs, segment triggers. Business state only; flows/ executes."""
