-- The whole "bring your own model" flow as one script:
--
--     byom sql -f examples/flow.sql                   (embedded, over $BYOM_HOME)
--     byom sql -f examples/flow.sql --url http://127.0.0.1:47334     (on a `byom serve`)
--
-- Start these first (see examples/README.md):
--   * the table, in the embedded datasource `local` ($BYOM_HOME defaults to ~/.byom):
--       python examples/home_rentals.py --sqlite "${BYOM_HOME:-$HOME/.byom}/local/test_data.sqlite"
--   * the Ray Serve model on port 8000:
--       python examples/ray_serve_model.py --port 8000
--   * the MLflow model on port 5000:
--       python examples/mlflow_model.py --out /tmp/byom-models
--       mlflow models serve -m /tmp/byom-models/home_rentals_rooms -h 127.0.0.1 -p 5000 \
--           --env-manager local
--
-- `byom sql -f` parses the whole script, then runs the statements in order and prints each
-- result after a `-- [k] <statement>` line. Training runs in the background, so it waits
-- for the training a CREATE PREDICTOR starts before it runs the next statement (run
-- statement by statement instead, e.g. over POST /api/sql, and wait until DESCRIBE byom
-- shows 'complete' before predicting).
--
-- Nothing here depends on where $BYOM_HOME is: the table is read through `local`, and the
-- one other file is mydb's, /tmp/byom_mydb.sqlite. The gateway opens only files that exist
-- under $BYOM_HOME or a directory of $BYOM_DATA_DIRS, so first:
--       touch /tmp/byom_mydb.sqlite && export BYOM_DATA_DIRS=/tmp
-- (for `byom serve`, export it before starting the server). The script can be run again:
-- it first drops what an earlier run may have left.

DROP MODEL IF EXISTS byom;
DROP MODEL IF EXISTS byom2;
DROP DATABASE IF EXISTS mydb;

-- 1. Datasources. `local` is the embedded SQLite datasource that always exists; the file
--    $BYOM_HOME/local/test_data.sqlite is its schema `test_data`.
SHOW DATABASES;

SELECT count(*) AS n, max(rental_price) AS top_rent FROM local.test_data.home_rentals;

-- Any SQLAlchemy-reachable database can be added (postgres works too); mydb receives
-- predictions below.
CREATE DATABASE mydb
WITH ENGINE = 'sqlite',
PARAMETERS = {"path": "/tmp/byom_mydb.sqlite"};

DROP TABLE IF EXISTS mydb.rooms;

SHOW DATABASES;

-- 2. Register the Ray Serve model and train it on rows read from a datasource.
--    'ray_server' is MindsDB's spelling of the format and is accepted.
CREATE PREDICTOR byom
FROM local (
    SELECT number_of_rooms, initial_price, rental_price
    FROM test_data.home_rentals
) PREDICT number_of_rooms
USING
url.train = 'http://127.0.0.1:8000/my_model/train',
url.predict = 'http://127.0.0.1:8000/my_model/predict',
dtype_dict = {"number_of_rooms": "categorical", "initial_price": "integer", "rental_price": "integer"},
format = 'ray_server';

-- status: complete (or error, with the endpoint's message)
DESCRIBE byom;

-- 3. Predict one row from literals: the input columns, the prediction and its confidence.
SELECT * FROM byom WHERE initial_price = 3000 AND rental_price = 3000;

-- 4. Predict in batch: the WHERE is pushed down to the datasource, rows stream to the model.
SELECT tb.number_of_rooms, t.rental_price
FROM local.test_data.home_rentals AS t
JOIN mindsdb.byom AS tb
WHERE t.rental_price > 5300;

-- ... and write the predictions to a table of another datasource.
CREATE TABLE mydb.rooms AS
SELECT t.initial_price, t.rental_price, tb.number_of_rooms
FROM local.test_data.home_rentals AS t
JOIN byom AS tb
WHERE t.location = 'great';

SELECT number_of_rooms, count(*) AS homes FROM mydb.rooms GROUP BY number_of_rooms;

-- 5. Register the MLflow model (predict-only: it was trained outside the gateway).
CREATE PREDICTOR byom2
PREDICT number_of_rooms
USING
url.predict = 'http://127.0.0.1:5000/invocations',
format = 'mlflow',
data_dtype = {"initial_price": "integer", "rental_price": "integer", "number_of_rooms": "integer"};

SELECT number_of_rooms FROM byom2 WHERE initial_price = 3000 AND rental_price = 3000;

-- Both models side by side on the same rows.
SELECT t.initial_price, t.rental_price,
       a.number_of_rooms AS ray_rooms, a.confidence,
       b.number_of_rooms AS mlflow_rooms
FROM local.test_data.home_rentals AS t
JOIN byom AS a
JOIN models.byom2 AS b
WHERE t.location = 'great'
LIMIT 5;

SHOW MODELS;

-- 6. Clean up.
DROP TABLE mydb.rooms;
DROP MODEL byom;
DROP PREDICTOR byom2;
DROP DATABASE mydb;
