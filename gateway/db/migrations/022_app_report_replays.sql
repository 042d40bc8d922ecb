-- A member's app signs its beacon reports as a box signs its uploads, and the same signed report twice is a
-- replay in the same way: the signatures seen are remembered beside the boxes', one sender per row.
ALTER TABLE agent_requests ALTER COLUMN agent_id DROP NOT NULL;
ALTER TABLE agent_requests ADD COLUMN member_id uuid REFERENCES members(id) ON DELETE CASCADE;
ALTER TABLE agent_requests ADD CONSTRAINT agent_requests_one_sender CHECK ((agent_id IS NULL) <> (member_id IS NULL));
