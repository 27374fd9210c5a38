-- When the current attempt at a due item was first claimed (kept across lease take-overs,
-- cleared on retry): a grant's window is counted from it, so a re-run cannot extend it.
ALTER TABLE due_items ADD COLUMN first_claimed_at BIGINT;
