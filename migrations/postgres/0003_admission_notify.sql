-- Every change to who is in a meeting or who is banned from a room is announced on the channel
-- `bedrud_admission` ("c:<room name>" for participants, "b:<room id>" for bans), so that every
-- bedrud instance sharing this database can answer joins from memory and stay current
-- (src/store/mirror.rs). A trigger, not the application, so that no write path can forget it;
-- PostgreSQL delivers a transaction's notifications at its commit, once per distinct payload.
CREATE FUNCTION bedrud_admission_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'participants' THEN
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('bedrud_admission', 'c:' || OLD.room_name);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('bedrud_admission', 'c:' || NEW.room_name);
        END IF;
    ELSE
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('bedrud_admission', 'b:' || OLD.room_id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('bedrud_admission', 'b:' || NEW.room_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER participants_admission_notify
    AFTER INSERT OR UPDATE OR DELETE ON participants
    FOR EACH ROW EXECUTE FUNCTION bedrud_admission_notify();

CREATE TRIGGER room_bans_admission_notify
    AFTER INSERT OR UPDATE OR DELETE ON room_bans
    FOR EACH ROW EXECUTE FUNCTION bedrud_admission_notify();
